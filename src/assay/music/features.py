"""Measure a few descriptive features of mono audio and describe them in plain mood words.

    f = measure(audio, 44100)   # AudioFeatures(tempo_bpm=..., spectral_centroid_hz=..., ...)
    describe(f)                 # "slow, dark, quiet and sparse ambient music with a deep, smooth sound"

All features come from one STFT (2048-sample Hann frames, hop 512). The description is built from
fixed bins (the `*_BINS` constants; table in docs/music.md) so equal features give equal words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d

N_FFT = 2048
HOP = 512
SILENCE_DBFS = -70.0  # frames quieter than this (RMS) are left out of the spectral features
LOW_HZ = 250.0
HIGH_HZ = 4000.0

# Onset envelope (spectral flux over log-spaced bands)
ONSET_BANDS = 40
FLUX_LAG = 3  # frames (~35 ms): a soft attack still shows as one rise
FLUX_GAIN = 100.0  # log1p(gain·band/loudest band): bands ~40 dB below the loudest barely count

# Tempo
TEMPO_RANGE_BPM = (60.0, 180.0)
TREND_S = 2.0  # the envelope's moving mean over this window is removed first (swells are not beats)
MIN_BEAT_STRENGTH = 0.4  # autocorrelation peak (0–1) below which there is no tempo: beating between
# sustained tones, echo taps and random plinks reach ~0.35; drum and arpeggio grids 0.7–0.95
MIN_ONSETS_PER_S_FOR_TEMPO = 0.75  # 60 BPM needs about one onset a second
TEMPO_PRIOR_BPM = 120.0  # log-normal preference that settles half/double-tempo near-ties …
TEMPO_PRIOR_OCTAVES = 1.0  # … with this width (octaves)

# Onsets: a peak of the envelope within ±ONSET_WINDOW_S that rises above the mean of the surrounding
# ±ONSET_CONTEXT_S by max(ONSET_DELTA·std, ONSET_MIN_RISE); beating and echoes of sustained sounds
# stay below ~3 flux units, note and drum attacks reach 5–40.
ONSET_WINDOW_S = 0.06
ONSET_CONTEXT_S = 0.5
ONSET_DELTA = 0.6
ONSET_MIN_RISE = 3.0

# Description bins: (upper edge, word); a value takes the word of the first edge it is below.
# Edges were set from the spread of 150 random renders (see docs/music.md).
TEMPO_BINS = ((80.0, "slow"), (100.0, "relaxed"), (120.0, "moderate"), (140.0, "upbeat"), (float("inf"), "fast"))
NO_TEMPO_WORD = "unhurried"
BRIGHTNESS_BINS = (  # on power_centroid_hz
    (140.0, "very dark"),
    (200.0, "dark"),
    (300.0, "warm"),
    (500.0, "bright"),
    (float("inf"), "very bright"),
)
LOUDNESS_BINS = (  # on loudness_dbfs of the (peak-normalised) render
    (-18.0, "hushed"),
    (-15.5, "quiet"),
    (-13.5, "gentle"),
    (-11.0, "strong"),
    (float("inf"), "loud"),
)
BUSYNESS_BINS = ((0.5, "still"), (1.2, "sparse"), (2.5, "flowing"), (4.5, "busy"), (float("inf"), "frantic"))
NO_BEAT_CHARACTER = "ambient"
CHARACTER_BINS = ((0.6, "pulsing"), (float("inf"), "rhythmic"))  # on beat_strength, when there is a tempo
# Spectral balance word: deep (low share ≥ DEEP_LOW), else airy (high share ≥ AIRY_HIGH), else light
# (low share < LIGHT_LOW), else full.
DEEP_LOW = 0.8
AIRY_HIGH = 0.01
LIGHT_LOW = 0.4
TEXTURE_BINS = ((0.0015, "smooth"), (0.006, "hazy"), (float("inf"), "gritty"))  # on spectral_flatness


@dataclass(frozen=True)
class AudioFeatures:
    """Descriptive features of a mono signal.

    tempo_bpm: dominant beat period in 60–180 BPM (None when no clear periodicity).
    beat_strength: normalised onset-envelope autocorrelation at that period, 0–1.
    spectral_centroid_hz: magnitude-weighted mean frequency over non-silent frames (sensitive to a faint
        broadband floor such as hiss).
    power_centroid_hz: power-weighted mean frequency over non-silent frames (follows where the energy is;
        describe() uses it for the brightness word).
    loudness_dbfs: RMS level in dB full scale (a full-scale sine is −3 dBFS).
    onset_density: onsets per second (peaks of spectral flux).
    spectral_flatness: mean over non-silent frames of geometric/arithmetic mean power, 0 (tonal) – 1 (noise).
    low_energy_ratio / high_energy_ratio: share of spectral energy below 250 Hz / above 4 kHz.
    dynamic_range_db: 95th minus 10th percentile of non-silent frame RMS levels (dB).
    duration_s: length in seconds.
    """

    tempo_bpm: float | None
    beat_strength: float
    spectral_centroid_hz: float
    power_centroid_hz: float
    loudness_dbfs: float
    onset_density: float
    spectral_flatness: float
    low_energy_ratio: float
    high_energy_ratio: float
    dynamic_range_db: float
    duration_s: float

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def _frames(x: np.ndarray) -> np.ndarray:
    """(n_frames, N_FFT) overlapping full frames (a partial last frame is dropped: its abrupt end would
    read as an onset); a signal shorter than one frame is zero-padded to one."""
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]


def _db(x: np.ndarray | float) -> np.ndarray | float:
    return 20.0 * np.log10(np.maximum(x, 1e-10))


def _band_matrix(sample_rate: int) -> np.ndarray:
    """(N_FFT//2+1, n_bands) 0/1 matrix summing FFT bins into log-spaced bands from 30 Hz to 16 kHz."""
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    edges = np.geomspace(30.0, min(16000.0, sample_rate / 2), ONSET_BANDS + 1)
    index = np.unique(np.searchsorted(freqs, edges))
    bands = np.zeros((len(freqs), len(index) - 1))
    for j, (lo, hi) in enumerate(zip(index[:-1], index[1:], strict=True)):
        bands[lo:hi, j] = 1.0
    return bands


def onset_envelope(mag: np.ndarray, sample_rate: int) -> np.ndarray:
    """Spectral flux per frame: summed rise of log-compressed band magnitudes over FLUX_LAG frames before.

    Comparing with a frame ~35 ms back lets soft attacks register as one rise. Summing bins into bands
    first and compressing relative to the loudest band (a ~40 dB range) keeps a steady noise floor
    (hiss, per-sample humanize) from looking like a stream of onsets.
    """
    bands = mag @ _band_matrix(sample_rate)
    compressed = np.log1p(FLUX_GAIN * bands / max(float(bands.max()), 1e-12))
    lag = min(FLUX_LAG, max(1, len(compressed) - 1))
    flux = np.maximum(0.0, compressed[lag:] - compressed[:-lag]).sum(axis=1)
    return np.concatenate([np.zeros(lag), flux])


def estimate_tempo(env: np.ndarray, frame_rate: float) -> tuple[float | None, float]:
    """(BPM or None, beat strength) from the autocorrelation of the onset envelope in 60–180 BPM."""
    # Remove the slow trend (a swelling pad) so only beat-rate periodicity is left.
    env = env - uniform_filter1d(env, max(1, int(round(TREND_S * frame_rate))), mode="nearest")
    if len(env) < 4 or np.max(env) < ONSET_MIN_RISE:  # no attack stands out: nothing to keep time with
        return None, 0.0
    spectrum = np.fft.rfft(env, 2 * len(env))
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: len(env)]
    acf = acf / acf[0]
    lo = int(np.floor(frame_rate * 60.0 / TEMPO_RANGE_BPM[1]))
    hi = int(np.ceil(frame_rate * 60.0 / TEMPO_RANGE_BPM[0]))
    if hi + 1 >= len(acf):
        return None, 0.0
    lags = np.arange(lo, hi + 1)
    # A log-normal preference around 120 BPM settles half/double-tempo ties the way listeners do.
    prior = np.exp(-0.5 * (np.log2(60.0 * frame_rate / lags / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)
    lag = lo + int(np.argmax(acf[lo : hi + 1] * prior))
    strength = float(max(0.0, acf[lag]))
    if strength < MIN_BEAT_STRENGTH:
        return None, strength
    # parabolic interpolation for a sub-frame period
    a, b, c = acf[lag - 1], acf[lag], acf[lag + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    bpm = 60.0 * frame_rate / (lag + float(np.clip(shift, -0.5, 0.5)))
    return float(np.clip(bpm, *TEMPO_RANGE_BPM)), strength


def count_onsets(env: np.ndarray, frame_rate: float) -> int:
    """Peaks of the onset envelope: local maxima (±60 ms) that rise above the local mean (±0.5 s) by
    max(ONSET_DELTA·std, ONSET_MIN_RISE)."""
    if len(env) < 3 or not np.any(env > 0):
        return 0
    w = max(1, int(round(ONSET_WINDOW_S * frame_rate)))
    ctx = max(1, int(round(ONSET_CONTEXT_S * frame_rate)))
    local_max = maximum_filter1d(env, 2 * w + 1, mode="constant", cval=-np.inf)
    local_mean = uniform_filter1d(env, 2 * ctx + 1, mode="nearest")
    peaks = (env >= local_max) & (env > local_mean + max(ONSET_DELTA * env.std(), ONSET_MIN_RISE))
    return int(np.count_nonzero(peaks))


def measure(audio: np.ndarray, sample_rate: int) -> AudioFeatures:
    """Features of mono `audio` (float samples, nominally in [-1, 1]) at `sample_rate` Hz."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    duration = len(x) / sample_rate
    rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    frames = _frames(x)
    frame_rms = np.sqrt(np.mean(frames**2, axis=1))
    mag = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1))
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    voiced = _db(frame_rms) > SILENCE_DBFS
    frame_rate = sample_rate / HOP

    if np.any(voiced):
        m = mag[voiced]
        power = m**2
        centroid = float((m * freqs).sum() / max(m.sum(), 1e-12))
        power_centroid = float((power * freqs).sum() / max(power.sum(), 1e-20))
        flatness = float(np.mean(np.exp(np.mean(np.log(power + 1e-20), axis=1)) / (power.mean(axis=1) + 1e-20)))
        total = max(power.sum(), 1e-20)
        low = float(power[:, freqs < LOW_HZ].sum() / total)
        high = float(power[:, freqs > HIGH_HZ].sum() / total)
        levels = _db(frame_rms[voiced])
        dyn = float(np.percentile(levels, 95) - np.percentile(levels, 10))
    else:
        centroid = power_centroid = flatness = low = high = dyn = 0.0

    env = onset_envelope(mag, sample_rate)
    tempo, strength = estimate_tempo(env, frame_rate)
    onsets = count_onsets(env, frame_rate)
    if duration > 0 and onsets / duration < MIN_ONSETS_PER_S_FOR_TEMPO:
        tempo = None  # a handful of chord changes that happen to line up is not a beat
    return AudioFeatures(
        tempo_bpm=tempo,
        beat_strength=round(strength, 4),
        spectral_centroid_hz=centroid,
        power_centroid_hz=power_centroid,
        loudness_dbfs=float(_db(rms)),
        onset_density=onsets / duration if duration > 0 else 0.0,
        spectral_flatness=flatness,
        low_energy_ratio=low,
        high_energy_ratio=high,
        dynamic_range_db=dyn,
        duration_s=duration,
    )


def _bin(value: float, bins: tuple[tuple[float, str], ...]) -> str:
    for edge, word in bins:
        if value < edge:
            return word
    return bins[-1][1]


def describe(f: AudioFeatures) -> str:
    """One deterministic sentence from fixed bins, e.g.
    "slow, dark, quiet and sparse ambient music with a deep, smooth sound"."""
    tempo = _bin(f.tempo_bpm, TEMPO_BINS) if f.tempo_bpm else NO_TEMPO_WORD
    brightness = _bin(f.power_centroid_hz, BRIGHTNESS_BINS)
    loudness = _bin(f.loudness_dbfs, LOUDNESS_BINS)
    busyness = _bin(f.onset_density, BUSYNESS_BINS)
    character = _bin(f.beat_strength, CHARACTER_BINS) if f.tempo_bpm else NO_BEAT_CHARACTER
    if f.low_energy_ratio >= DEEP_LOW:
        balance = "deep"
    elif f.high_energy_ratio >= AIRY_HIGH:
        balance = "airy"
    elif f.low_energy_ratio < LIGHT_LOW:
        balance = "light"
    else:
        balance = "full"
    texture = _bin(f.spectral_flatness, TEXTURE_BINS)
    sound = f"{'an' if balance[0] in 'aeiou' else 'a'} {balance}, {texture} sound"
    return f"{tempo}, {brightness}, {loudness} and {busyness} {character} music with {sound}"
