"""Signal primitives of the renderer: oscillators, envelopes, filters and the effect taps.

Every signal is a 1-D float64 numpy array of samples at `sr` Hz (mono); times are in seconds,
frequencies in Hz. Everything is vectorised over samples — no per-sample Python loops.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

MIN_ATTACK_S = 0.005
MIN_RELEASE_S = 0.010
REVERB_TAPS_S = (0.029, 0.037, 0.041, 0.053, 0.067)
ATTACK_MULT = {"soft": 2.5, "medium": 1.0, "sharp": 0.3}


# --- oscillators ---------------------------------------------------------------------------------


def phase01(freq: float, n: int, sr: int) -> np.ndarray:
    """Phase in cycles, wrapped to [0, 1), of an oscillator at `freq` Hz over `n` samples."""
    phase = np.arange(n) * (freq / sr)
    phase -= np.floor(phase)  # several times faster than np.mod for floats
    return phase


def sine(freq: float, n: int, sr: int) -> np.ndarray:
    return np.sin(2.0 * np.pi * freq / sr * np.arange(n))


def triangle(freq: float, n: int, sr: int) -> np.ndarray:
    """Naive triangle in [-1, 1] starting at 0 (its harmonics fall as 1/k², so aliasing is mild)."""
    t = np.arange(n) * (freq / sr) + 0.25
    t -= np.floor(t)
    t -= 0.5
    np.abs(t, out=t)
    t *= -4.0
    t += 1.0
    return t


def _polyblep(t: np.ndarray, dt: float) -> np.ndarray:
    """The PolyBLEP correction that smooths a saw's jump at phase 0 over one sample each side."""
    out = np.zeros_like(t)
    lo = t < dt
    x = t[lo] / dt
    out[lo] = 2.0 * x - x * x - 1.0
    hi = t > 1.0 - dt
    x = (t[hi] - 1.0) / dt
    out[hi] = x * x + 2.0 * x + 1.0
    return out


def saw(freq: float, n: int, sr: int) -> np.ndarray:
    """Band-limited (PolyBLEP) sawtooth in [-1, 1]."""
    t = phase01(freq, n, sr)
    out = 2.0 * t - 1.0
    out -= _polyblep(t, freq / sr)
    return out


def saw_oversampled(freq: float, n: int, sr: int) -> np.ndarray:
    """PolyBLEP saw rendered at 2·sr and decimated with an anti-alias FIR: fewer aliased partials."""
    hi = saw(freq, 2 * n, 2 * sr)
    return signal.resample_poly(hi, 1, 2)[:n]


def grain_osc(grain: str, freq: float, n: int, sr: int) -> np.ndarray:
    """The `grain` oscillator: clean → sine, warm → triangle, gritty → oversampled PolyBLEP saw."""
    if grain == "warm":
        return triangle(freq, n, sr)
    if grain == "gritty":
        return saw_oversampled(freq, n, sr)
    return sine(freq, n, sr)


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White noise, N(0, 1), drawn from the render's one generator."""
    return rng.standard_normal(n)


# --- envelopes -----------------------------------------------------------------------------------


def adsr(gate_s: float, a: float, d: float, s: float, r: float, sr: int) -> np.ndarray:
    """Linear ADSR: rise to 1 over `a`, fall to `s` over `d`, hold until `gate_s`, fall to 0 over `r`.

    Length is gate + release (samples). A gate shorter than attack + decay releases from wherever
    the envelope is. Attack is at least 5 ms and release at least 10 ms (no clicks).
    """
    a, r, d = max(a, MIN_ATTACK_S), max(r, MIN_RELEASE_S), max(d, 1e-6)
    gate_s = max(gate_s, 1.0 / sr)
    t = np.arange(int(round((gate_s + r) * sr))) / sr
    env = np.interp(t, [0.0, a, a + d], [0.0, 1.0, s])  # holds `s` after a + d
    at_gate = float(np.interp(gate_s, [0.0, a, a + d], [0.0, 1.0, s]))
    released = t >= gate_s
    env[released] = at_gate * np.clip(1.0 - (t[released] - gate_s) / r, 0.0, None)
    return env


def decay_env(length_s: float, tau_s: float, sr: int, attack_s: float = MIN_ATTACK_S) -> np.ndarray:
    """Percussive envelope: a short linear attack, then exp(-t/tau), `length_s` long."""
    n = max(1, int(round(length_s * sr)))
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack_s, 1.0 / sr)) * np.exp(-t / tau_s)


# --- filters -------------------------------------------------------------------------------------


def _butter(x: np.ndarray, cutoff_hz: float | tuple[float, float], kind: str, sr: int) -> np.ndarray:
    nyquist = sr / 2.0
    wn = np.clip(np.asarray(cutoff_hz, dtype=float) / nyquist, 0.001, 0.99)
    b, a = signal.butter(2, wn, btype=kind)
    return signal.lfilter(b, a, x)


def lowpass(x: np.ndarray, cutoff_hz: float, sr: int) -> np.ndarray:
    """2nd-order Butterworth low-pass, causal; cutoff/Nyquist clamped to 0.001–0.99."""
    return _butter(x, cutoff_hz, "lowpass", sr)


def highpass(x: np.ndarray, cutoff_hz: float, sr: int) -> np.ndarray:
    """2nd-order Butterworth high-pass, causal; cutoff/Nyquist clamped to 0.001–0.99."""
    return _butter(x, cutoff_hz, "highpass", sr)


def bandpass(x: np.ndarray, low_hz: float, high_hz: float, sr: int) -> np.ndarray:
    """High-pass at `low_hz` then low-pass at `high_hz` (two 2nd-order Butterworth sections)."""
    return lowpass(highpass(x, low_hz, sr), high_hz, sr)


# --- effects (all keep the input length; what falls past the end is dropped) --------------------


def shifted(x: np.ndarray, samples: int) -> np.ndarray:
    """`x` delayed by `samples`, same length (zeros in front)."""
    out = np.zeros_like(x)
    if 0 <= samples < len(x):
        out[samples:] = x[: len(x) - samples]
    return out


def reverb(x: np.ndarray, room: float, size: float, sr: int) -> np.ndarray:
    """Dry signal plus 5 early-reflection taps at 29/37/41/53/67 ms × size, gains room·0.7^i."""
    if room <= 0.0:
        return x
    out = x.copy()
    for i, tap in enumerate(REVERB_TAPS_S):
        out += room * 0.7**i * shifted(x, int(round(tap * size * sr)))
    return out


def delay(x: np.ndarray, time_s: float, feedback: float, wet: float, sr: int) -> np.ndarray:
    """Dry signal plus 4 echoes at k·time (k = 1..4) with gains feedback^k · wet."""
    if feedback <= 0.0 or wet <= 0.0:
        return x
    out = x.copy()
    for k in range(1, 5):
        out += feedback**k * wet * shifted(x, int(round(k * time_s * sr)))
    return out


def stereo_micro_delay(x: np.ndarray, stereo: float, sr: int) -> np.ndarray:
    """The stereo-width stand-in of a mono render: a 1–10 ms copy (scaling with `stereo`) mixed in at
    up to 12 %."""
    mix = 0.12 * stereo
    if mix <= 0.0:
        return x
    return (1.0 - mix) * x + mix * shifted(x, int(round((0.001 + 0.009 * stereo) * sr)))


def humanize(x: np.ndarray, human: float, rng: np.random.Generator) -> np.ndarray:
    """Per-sample gain 1 + N(0, 0.1·human), clipped to 0.9–1.1."""
    if human <= 0.0:
        return x
    gain = np.clip(1.0 + rng.normal(0.0, 0.1 * human, size=len(x)), 0.9, 1.1)
    return x * gain


def add_at(buf: np.ndarray, start: int, sig: np.ndarray) -> None:
    """Add `sig` into `buf` from sample `start` on, in place, cropping at either end."""
    if start < 0:
        sig, start = sig[-start:], 0
    end = min(len(buf), start + len(sig))
    if end > start:
        buf[start:end] += sig[: end - start]
