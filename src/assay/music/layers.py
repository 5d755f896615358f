"""The six layers of the renderer — bass, pad, melody, rhythm, texture, accent — one function per style.

Each style function takes a `Scene` and returns a mono float64 buffer of `scene.n` samples. Style
aliases map onto the implemented styles through the `*_STYLES` tables. Levels (`amp`) are the
per-voice peak gains before the final peak normalisation; where the spec gives none, the value is
ours (see docs/music.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assay.music import dsp
from assay.music.params import RenderParams
from assay.music.theory import (
    Chord,
    Note,
    chord_at,
    chord_tones,
    degree_freq,
    pattern_melody,
    procedural_melody,
)

Osc = Callable[[float, int, int], np.ndarray]
Envelope = tuple[float, float, float, float]  # attack s, decay s, sustain level, release s

PAD_ENV: Envelope = (1.5, 0.8, 0.85, 2.5)
PATTERN_MELODY_ENV: Envelope = (0.05, 0.3, 0.6, 0.8)
PROCEDURAL_MELODY_ENV: Envelope = (0.02, 0.15, 0.6, 0.3)
MELODY_AMP = 0.14
KICK_AMP = 0.55
HAT_AMP = 0.15


@dataclass(frozen=True)
class Scene:
    """Everything a layer needs: parameters, timing, chords and the render's one random generator."""

    p: RenderParams
    sr: int
    duration: float
    chords: list[Chord]
    rng: np.random.Generator

    @property
    def n(self) -> int:
        return int(round(self.duration * self.sr))

    @property
    def beat(self) -> float:
        return 60.0 / self.p.bpm

    @property
    def attack_mult(self) -> float:
        return dsp.ATTACK_MULT[self.p.attack]

    @property
    def echo_mult(self) -> float:
        """echo / 0.5 (0–1.9): scales delay feedback and wet level."""
        return self.p.echo / 0.5

    def zeros(self) -> np.ndarray:
        return np.zeros(self.n)

    def time(self) -> np.ndarray:
        return np.arange(self.n) / self.sr


def play(sc: Scene, notes: list[Note], osc: Osc, amp: float, env: Envelope) -> np.ndarray:
    """Render notes with one oscillator and an ADSR (attack and release scaled by the attack label).

    Notes that start together with the same length and velocity (a chord's voices) share one
    envelope: their oscillators are summed first, so a 5-voice chord costs one envelope, not five.
    """
    buf = sc.zeros()
    a, d, s, r = env
    groups: dict[tuple[int, float, float], list[float]] = {}
    for note in notes:
        start = int(round(note.start_s * sc.sr))
        if start < sc.n:
            groups.setdefault((start, note.dur_s, note.velocity), []).append(note.freq)
    envelopes: dict[float, np.ndarray] = {}
    for (start, dur_s, velocity), freqs in groups.items():
        if dur_s not in envelopes:
            envelopes[dur_s] = dsp.adsr(dur_s, a * sc.attack_mult, d, s, r * sc.attack_mult, sc.sr)
        e = envelopes[dur_s][: sc.n - start]
        tone = osc(freqs[0], len(e), sc.sr)
        for freq in freqs[1:]:
            tone += osc(freq, len(e), sc.sr)
        dsp.add_at(buf, start, (amp * velocity) * e * tone)
    return buf


def strike(sc: Scene, freq: float, partials: tuple[tuple[float, float, float], ...], length_s: float) -> np.ndarray:
    """A struck tone: sum of (ratio, gain, decay τ s) sine partials with exponential decays."""
    attack = dsp.MIN_ATTACK_S * sc.attack_mult
    out = np.zeros(max(1, int(round(length_s * sc.sr))))
    for ratio, gain, tau in partials:
        out += gain * dsp.decay_env(length_s, tau, sc.sr, attack) * dsp.sine(freq * ratio, len(out), sc.sr)
    return out


def random_times(sc: Scene, rate_hz: float) -> np.ndarray:
    """Poisson event times (s): count ~ Poisson(rate·duration), placed uniformly, sorted."""
    count = int(sc.rng.poisson(rate_hz * sc.duration))
    return np.sort(sc.rng.uniform(0.0, sc.duration, size=count))


def grain(sc: Scene) -> Osc:
    return lambda f, n, sr: dsp.grain_osc(sc.p.grain, f, n, sr)


def fade(sc: Scene, x: np.ndarray, seconds: float = 0.5) -> np.ndarray:
    """Linear fade-in and fade-out on continuous layers (no click at either end)."""
    k = min(len(x) // 2, int(seconds * sc.sr))
    if k > 0:
        ramp = np.linspace(0.0, 1.0, k)
        x[:k] *= ramp
        x[-k:] *= ramp[::-1]
    return x


def lfo(sc: Scene, rate_hz: float) -> np.ndarray:
    """A unipolar sine LFO in [0, 1]."""
    return 0.5 + 0.5 * np.sin(2.0 * np.pi * rate_hz * sc.time())


# --- bass ----------------------------------------------------------------------------------------


def bass_drone(sc: Scene) -> np.ndarray:
    p = sc.p
    notes = [Note(c.start_s, 1.15 * c.dur_s, degree_freq(p, c.degree, 2)) for c in sc.chords]
    y = dsp.lowpass(play(sc, notes, dsp.sine, 0.35, (1.8, 0.5, 0.95, 2.2)), 80 * p.brightness + 20, sc.sr)
    return dsp.reverb(y, 0.5 * p.space, p.space, sc.sr)


def bass_sustained(sc: Scene) -> np.ndarray:
    p = sc.p
    notes = [
        Note(c.start_s + i * c.dur_s / 4, c.dur_s / 4, degree_freq(p, c.degree + step, 2))
        for c in sc.chords
        for i, step in enumerate((0, 0, 4, 0))
    ]
    y = dsp.lowpass(play(sc, notes, dsp.sine, 0.32, (0.7, 0.3, 0.85, 1.2)), 100 * p.brightness + 30, sc.sr)
    return dsp.reverb(y, 0.4 * p.space, p.space, sc.sr)


def _beats(sc: Scene, every_beats: float, offset_beats: float = 0.0) -> np.ndarray:
    """Times (s) of a tempo-locked grid: every `every_beats` beats from `offset_beats` on."""
    return np.arange(offset_beats * sc.beat, sc.duration, every_beats * sc.beat)


def bass_pulsing(sc: Scene) -> np.ndarray:
    p = sc.p
    notes = [Note(t, 0.4 * sc.beat, degree_freq(p, chord_at(sc.chords, t).degree, 2)) for t in _beats(sc, 0.5)]
    y = play(sc, notes, dsp.sine, 0.35, (0.02, 0.08, 0.6, 0.25))
    return dsp.lowpass(y, 90 * p.brightness + 20, sc.sr)


def bass_walking(sc: Scene) -> np.ndarray:
    p = sc.p
    notes = []
    for i, t in enumerate(_beats(sc, 1.0)):
        chord = chord_at(sc.chords, t)
        notes.append(Note(t, 0.9 * sc.beat, degree_freq(p, chord.degree + (0, 2, 4, 2)[i % 4], 2)))
    y = dsp.lowpass(play(sc, notes, dsp.triangle, 0.30, (0.04, 0.12, 0.7, 0.22)), 120 * p.brightness + 40, sc.sr)
    return dsp.reverb(y, 0.3 * p.space, 0.8 * p.space, sc.sr)


def bass_fifth_drone(sc: Scene) -> np.ndarray:
    p = sc.p
    env = (1.8, 0.5, 0.95, 2.2)
    roots = [Note(c.start_s, 1.15 * c.dur_s, degree_freq(p, c.degree, 2)) for c in sc.chords]
    fifths = [Note(c.start_s, 1.15 * c.dur_s, degree_freq(p, c.degree + 4, 2)) for c in sc.chords]
    root = dsp.lowpass(play(sc, roots, dsp.sine, 0.26, env), 70 * p.brightness + 20, sc.sr)
    return root + dsp.lowpass(play(sc, fifths, dsp.sine, 0.18, env), 100 * p.brightness + 30, sc.sr)


def bass_sub_pulse(sc: Scene) -> np.ndarray:
    p = sc.p
    notes = [Note(t, sc.beat, degree_freq(p, chord_at(sc.chords, t).degree, 1)) for t in _beats(sc, 2.0)]
    return dsp.lowpass(play(sc, notes, dsp.sine, 0.4, (0.25, 0.2, 0.9, 0.7)), 55.0, sc.sr)


BASS_STYLES: dict[str, Callable[[Scene], np.ndarray]] = {
    "drone": bass_drone,
    "sustained": bass_sustained,
    "octave": bass_sustained,
    "pulsing": bass_pulsing,
    "arp_bass": bass_pulsing,
    "walking": bass_walking,
    "fifth_drone": bass_fifth_drone,
    "sub_pulse": bass_sub_pulse,
}


# --- pad -----------------------------------------------------------------------------------------


def _chord_notes(sc: Scene, voices: list[tuple[int, int]], length: float = 1.0) -> list[Note]:
    """One note per (degree offset, octave) voice per chord, `length` × the chord's duration."""
    return [
        Note(c.start_s, length * c.dur_s, degree_freq(sc.p, c.degree + deg, octave))
        for c in sc.chords
        for deg, octave in voices
    ]


def _triad_voices(sc: Scene, octave: int) -> list[tuple[int, int]]:
    # Pads play only the first three chord tones, whatever the extensions.
    return [(deg, octave) for deg in chord_tones(0, sc.p.chord_extensions)[:3]]


def pad_warm_slow(sc: Scene) -> np.ndarray:
    p = sc.p
    y = play(sc, _chord_notes(sc, _triad_voices(sc, 3)), grain(sc), 0.15, PAD_ENV)
    c = 300 * p.brightness + 100
    mix = lfo(sc, 0.1 / (p.motion + 0.1))  # blends a darker and a brighter copy
    y = mix * dsp.lowpass(y, 1.5 * c, sc.sr) + (1.0 - mix) * dsp.lowpass(y, 0.5 * c, sc.sr)
    y = dsp.reverb(y, 0.7 * p.space, 0.9 * p.space, sc.sr)
    return dsp.delay(y, 0.35, 0.3 * sc.echo_mult, 0.25 * sc.echo_mult, sc.sr)


def pad_dark_sustained(sc: Scene) -> np.ndarray:
    p = sc.p
    y = play(sc, _chord_notes(sc, _triad_voices(sc, 3)), dsp.saw, 0.12, (2.0, 1.0, 0.9, 3.0))
    return dsp.reverb(dsp.lowpass(y, 200 * p.brightness + 80, sc.sr), 0.8 * p.space, p.space, sc.sr)


def pad_cinematic(sc: Scene) -> np.ndarray:
    p = sc.p
    notes = _chord_notes(sc, [(0, 3), (2, 3), (4, 3), (0, 4), (4, 4)])
    detuned = [Note(n.start_s, n.dur_s, n.freq * 1.002, n.velocity) for n in notes]
    y = play(sc, notes, dsp.saw, 0.08, PAD_ENV) + play(sc, detuned, dsp.triangle, 0.06, PAD_ENV)
    y = dsp.lowpass(y, 400 * p.brightness + 150, sc.sr)
    return dsp.delay(y, 0.4, 0.35 * sc.echo_mult, 0.3 * sc.echo_mult, sc.sr)


def pad_thin_high(sc: Scene) -> np.ndarray:
    p = sc.p
    y = play(sc, _chord_notes(sc, [(0, 4), (4, 4)]), dsp.sine, 0.12, PAD_ENV)
    return dsp.highpass(dsp.lowpass(y, 800 * p.brightness + 200, sc.sr), 200.0, sc.sr)


def pad_ambient_drift(sc: Scene) -> np.ndarray:
    p = sc.p
    notes = _chord_notes(sc, _triad_voices(sc, 3), length=1.35)
    if p.motion > 0.4:  # an added 6th above the chord root on some chords
        for c in sc.chords:
            if sc.rng.random() < 0.15 + 0.25 * p.motion:
                notes.append(Note(c.start_s, 1.35 * c.dur_s, degree_freq(p, c.degree + 5, 3)))
    y = play(sc, notes, dsp.sine, 0.14, (2.0, 1.0, 0.85, 3.0))
    return dsp.delay(y, 0.5, 0.4 * sc.echo_mult, 0.35 * sc.echo_mult, sc.sr)


def pad_stacked_fifths(sc: Scene) -> np.ndarray:
    p = sc.p
    y = play(sc, _chord_notes(sc, [(0, 3), (4, 3), (0, 4), (4, 4)]), grain(sc), 0.10, PAD_ENV)
    return dsp.lowpass(y, 500 * p.brightness + 150, sc.sr)


PAD_STYLES: dict[str, Callable[[Scene], np.ndarray]] = {
    "warm_slow": pad_warm_slow,
    "dark_sustained": pad_dark_sustained,
    "cinematic": pad_cinematic,
    "thin_high": pad_thin_high,
    "bright_open": pad_thin_high,
    "ambient_drift": pad_ambient_drift,
    "stacked_fifths": pad_stacked_fifths,
}


# --- melody --------------------------------------------------------------------------------------


def melody_layer(sc: Scene) -> np.ndarray:
    """Pattern melodies (not tempo-locked), or the procedural melody when melody or melody_engine says so."""
    p = sc.p
    if p.melody_engine == "procedural" or p.melody == "procedural":
        notes = procedural_melody(p, sc.duration, sc.chords, sc.rng)
        y = play(sc, notes, grain(sc), MELODY_AMP, PROCEDURAL_MELODY_ENV)
        return dsp.lowpass(y, 700 * p.brightness + 180, sc.sr)
    return play(sc, pattern_melody(p, sc.duration), grain(sc), MELODY_AMP, PATTERN_MELODY_ENV)


# --- rhythm (tempo-locked) -----------------------------------------------------------------------


def kick(sc: Scene, freq: float, length_s: float = 0.15) -> np.ndarray:
    """A sine kick: pitch falls from 2.5·freq to freq within ~20 ms, amplitude decays over `length_s`."""
    t = np.arange(int(round(length_s * sc.sr))) / sc.sr
    tau = 0.02
    phase = 2.0 * np.pi * freq * (t + 1.5 * tau * (1.0 - np.exp(-t / tau)))  # ∫ f·(1 + 1.5·e^(−t/τ)) dt
    return np.sin(phase) * dsp.decay_env(length_s, length_s / 3.0, sc.sr, 0.001)


def hat(sc: Scene, length_s: float = 0.04) -> np.ndarray:
    """An unfiltered noise burst (the layer's high-pass makes it a hat)."""
    n = int(round(length_s * sc.sr))
    return dsp.noise(sc.rng, n) * dsp.decay_env(length_s, length_s / 4.0, sc.sr, 0.001)


def _hits(sc: Scene, times: np.ndarray, make: Callable[[], np.ndarray], amp: float) -> np.ndarray:
    buf = sc.zeros()
    for t in times:
        dsp.add_at(buf, int(round(t * sc.sr)), amp * make())
    return buf


def _kicks(sc: Scene, freq: float, every_beats: float, offset_beats: float = 0.0, amp: float = KICK_AMP) -> np.ndarray:
    one = kick(sc, freq)
    return _hits(sc, _beats(sc, every_beats, offset_beats), lambda: one, amp)


def _hats(sc: Scene, cutoff: float, every_beats: float, offset_beats: float = 0.0) -> np.ndarray:
    return dsp.highpass(_hits(sc, _beats(sc, every_beats, offset_beats), lambda: hat(sc), HAT_AMP), cutoff, sc.sr)


def rhythm_minimal(sc: Scene) -> np.ndarray:
    return _kicks(sc, 60.0, 4.0)


def rhythm_heartbeat(sc: Scene) -> np.ndarray:
    # "lub-dub": two 8th-note kicks at the start of each bar, the second softer
    return _kicks(sc, 55.0, 4.0) + _kicks(sc, 55.0, 4.0, 0.5, 0.7 * KICK_AMP)


def rhythm_soft_four(sc: Scene) -> np.ndarray:
    return _kicks(sc, 50.0, 1.0)


def rhythm_hats_only(sc: Scene) -> np.ndarray:
    # every 16th; beats accented over 8ths over 16ths so the pulse reads as the beat, not the 16th
    y = _hats(sc, 6000.0, 1.0) + 0.7 * _hats(sc, 6000.0, 1.0, 0.5)
    return y + 0.45 * (_hats(sc, 6000.0, 1.0, 0.25) + _hats(sc, 6000.0, 1.0, 0.75))


def rhythm_electronic(sc: Scene) -> np.ndarray:
    return _kicks(sc, 45.0, 1.0) + _hats(sc, 7000.0, 1.0, 0.5)


RHYTHM_STYLES: dict[str, Callable[[Scene], np.ndarray]] = {
    "minimal": rhythm_minimal,
    "kit_light": rhythm_minimal,
    "brush": rhythm_minimal,
    "heartbeat": rhythm_heartbeat,
    "tabla_essence": rhythm_heartbeat,
    "soft_four": rhythm_soft_four,
    "kit_medium": rhythm_soft_four,
    "military": rhythm_soft_four,
    "hats_only": rhythm_hats_only,
    "electronic": rhythm_electronic,
}


# --- texture -------------------------------------------------------------------------------------


def _shimmer(sc: Scene, degrees: tuple[int, ...], amp: float, rate_hz: float) -> np.ndarray:
    y = sum(amp * dsp.sine(degree_freq(sc.p, d, 6), sc.n, sc.sr) for d in degrees)
    return fade(sc, y * lfo(sc, rate_hz))


def texture_shimmer(sc: Scene) -> np.ndarray:
    return _shimmer(sc, (0, 2, 4), 0.04, 2.0 / (sc.p.motion + 0.2))


def texture_shimmer_slow(sc: Scene) -> np.ndarray:
    return _shimmer(sc, (0, 4), 0.035, 0.5 / (sc.p.motion + 0.2))


def texture_vinyl_crackle(sc: Scene) -> np.ndarray:
    clicks = sc.zeros()
    times = random_times(sc, 20.0)
    idx = np.minimum(sc.n - 1, (times * sc.sr).astype(int))
    np.add.at(clicks, idx, sc.rng.uniform(0.01, 0.06, size=len(idx)) * sc.rng.choice([-1.0, 1.0], size=len(idx)))
    clicks = np.convolve(clicks, np.exp(-np.arange(44) / 8.0))[: sc.n]  # ~1 ms decay per click
    hiss = 0.01 * dsp.bandpass(dsp.noise(sc.rng, sc.n), 1000.0, 8000.0, sc.sr)
    return fade(sc, clicks + hiss)


def texture_breath(sc: Scene) -> np.ndarray:
    root = degree_freq(sc.p, 0, 3)
    band = dsp.bandpass(dsp.noise(sc.rng, sc.n), 0.5 * root, 2.0 * root, sc.sr)
    band *= 0.05 / max(1e-12, float(np.sqrt(np.mean(band**2))))  # RMS 0.05
    return fade(sc, band * (0.3 + 0.7 * lfo(sc, 0.2 / (sc.p.motion + 0.1))))


def texture_stars(sc: Scene) -> np.ndarray:
    buf = sc.zeros()
    for t in random_times(sc, 3.0):
        deg = int(sc.rng.choice([0, 2, 4, 5]))
        gain = 0.05 * sc.rng.uniform(0.5, 1.0)
        dsp.add_at(buf, int(t * sc.sr), gain * strike(sc, degree_freq(sc.p, deg, 6), ((1.0, 1.0, 0.15),), 0.6))
    return buf


TEXTURE_STYLES: dict[str, Callable[[Scene], np.ndarray]] = {
    "shimmer": texture_shimmer,
    "glitch": texture_shimmer,
    "shimmer_slow": texture_shimmer_slow,
    "vinyl_crackle": texture_vinyl_crackle,
    "breath": texture_breath,
    "noise_wash": texture_breath,
    "pad_whisper": texture_breath,
    "stars": texture_stars,
    "crystal": texture_stars,
}


# --- accent --------------------------------------------------------------------------------------

BELL_PARTIALS = ((1.0, 1.0, 1.2), (2.0, 0.5, 0.6), (3.0, 0.25, 0.3))


def _slot_notes(sc: Scene, events: tuple[tuple[int, int], ...], octave: int) -> list[tuple[float, float]]:
    slot = sc.duration / 16
    return [(s * slot, degree_freq(sc.p, deg, octave)) for s, deg in events]


def accent_bells(sc: Scene) -> np.ndarray:
    buf = sc.zeros()
    for t, freq in _slot_notes(sc, ((0, 0), (4, 4), (8, 2)), 5):
        dsp.add_at(buf, int(round(t * sc.sr)), 0.12 * strike(sc, freq, BELL_PARTIALS, 3.0))
    return buf


def accent_pluck(sc: Scene) -> np.ndarray:
    notes = [Note(t, 0.3, f) for t, f in _slot_notes(sc, ((0, 0), (3, 4), (6, 2), (10, 0)), 4)]
    y = play(sc, notes, dsp.triangle, 0.18, (0.005, 0.25, 0.2, 0.3))
    return dsp.lowpass(y, 1500 * sc.p.brightness + 400, sc.sr)


def accent_chime(sc: Scene) -> np.ndarray:
    buf = sc.zeros()
    for t in random_times(sc, 1.5):
        deg = int(sc.rng.choice([0, 2, 4, 5, 6]))
        tone = strike(sc, degree_freq(sc.p, deg, 5), ((1.0, 1.0, 0.8), (2.76, 0.3, 0.3)), 2.0)
        dsp.add_at(buf, int(t * sc.sr), 0.08 * tone)
    return buf


ACCENT_STYLES: dict[str, Callable[[Scene], np.ndarray]] = {
    "bells": accent_bells,
    "bells_dense": accent_bells,
    "blip": accent_bells,
    "brass_hit": accent_bells,
    "pluck": accent_pluck,
    "arp_accent": accent_pluck,
    "piano_note": accent_pluck,
    "chime": accent_chime,
    "blip_random": accent_chime,
    "wind": accent_chime,
}


def layers_for(p: RenderParams) -> list[tuple[str, Callable[[Scene], np.ndarray], float]]:
    """(name, style function, gain) of each layer that sounds, by density (2 bass+pad … 6 +accent);
    style "none" skips a layer; depth adds a sub_pulse bass at ×0.6."""
    out: list[tuple[str, Callable[[Scene], np.ndarray], float]] = [
        ("bass", BASS_STYLES[p.bass], 1.0),
        ("pad", PAD_STYLES[p.pad], 1.0),
    ]
    if p.density >= 3:
        out.append(("melody", melody_layer, 1.0))
    if p.density >= 4 and p.rhythm != "none":
        out.append(("rhythm", RHYTHM_STYLES[p.rhythm], 1.0))
    if p.density >= 5 and p.texture != "none":
        out.append(("texture", TEXTURE_STYLES[p.texture], 1.0))
    if p.density >= 6 and p.accent != "none":
        out.append(("accent", ACCENT_STYLES[p.accent], 1.0))
    if p.depth:
        out.append(("depth", bass_sub_pulse, 0.6))
    return out
