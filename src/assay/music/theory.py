"""Music theory of the renderer: pitches, modes, chord progressions and melodies (as note lists).

Scale degrees are 0-based and may exceed 6 (degree d → interval[d mod 7] + 12·⌊d/7⌋ semitones).
Notes are `Note(start_s, dur_s, freq_hz, velocity)`; nothing here makes sound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from assay.music.params import RenderParams

# Octave-4 frequencies (Hz), equal temperament with A4 = 440.
PITCH_TABLE: dict[str, float] = {
    "c": 261.63,
    "c#": 277.18,
    "d": 293.66,
    "d#": 311.13,
    "e": 329.63,
    "f": 349.23,
    "f#": 369.99,
    "g": 392.00,
    "g#": 415.30,
    "a": 440.00,
    "a#": 466.16,
    "b": 493.88,
}
MODE_INTERVALS: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
MAJOR_ISH = frozenset({"major", "mixolydian"})

# Four-chord templates (root scale degrees); one is drawn per render.
TEMPLATES: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "pop_major": ((0, 5, 3, 4), (0, 3, 4, 0), (0, 4, 5, 3)),
    "pop_minor": ((0, 5, 3, 6), (0, 3, 6, 4), (0, 6, 3, 5), (0, 4, 5, 3)),
    "jazz_major": ((1, 4, 0, 0), (1, 4, 0, 5), (5, 1, 4, 0)),
    "jazz_minor": ((1, 4, 0, 0), (5, 1, 4, 0)),
    "cinematic_minor": ((0, 6, 5, 3), (0, 5, 6, 4), (0, 6, 3, 4)),
    "ambient": ((0, 5, 0, 3), (0, 4, 0, 6), (0, 3, 0, 5)),
}
EXTENSIONS: dict[str, tuple[int, ...]] = {"triads": (0, 2, 4), "sevenths": (0, 2, 4, 6), "lush": (0, 2, 4, 6, 8)}

# Melody patterns: 16 slots spread over the whole render; slot → scale degree (octave 5).
MELODY_PATTERNS: dict[str, tuple[tuple[int, int], ...]] = {
    "contemplative": ((0, 0), (2, 2), (4, 4), (6, 2), (8, 0), (12, 2)),
    "rising": ((0, 0), (2, 2), (4, 4), (7, 5), (10, 6)),
    "falling": ((0, 6), (3, 5), (6, 4), (8, 2), (11, 0)),
    "minimal": ((0, 4), (8, 2)),
}
PATTERN_ALIASES = {
    "contemplative_minor": "contemplative",
    "call_response": "contemplative",
    "heroic": "rising",
}
ORNAMENTAL_MAIN = (0, 4, 2, 0)
ORNAMENTAL_GRACE = (2, 5, 3, 2)
ARP_DEGREES = (0, 2, 4, 2)
PATTERN_SLOTS = 16


@dataclass(frozen=True)
class Note:
    start_s: float
    dur_s: float
    freq: float
    velocity: float = 1.0


@dataclass(frozen=True)
class Chord:
    start_s: float
    dur_s: float
    degree: int


def degree_freq(p: RenderParams, degree: int, octave: int, semitones: int = 0) -> float:
    """Frequency (Hz) of scale `degree` of the key at `octave` (+ `semitones` chromatic offset)."""
    intervals = MODE_INTERVALS[p.mode]
    semi = intervals[degree % 7] + 12 * (degree // 7) + semitones
    return PITCH_TABLE[p.root] * 2.0 ** (octave - 4) * 2.0 ** (semi / 12.0)


def resolve_harmony_style(p: RenderParams) -> str:
    """`auto` → ambient (no rhythm, space ≥ 0.7), cinematic (cinematic pad or drone/sub_pulse bass),
    jazz (vinyl crackle or ornamental melody), else pop."""
    if p.harmony_style != "auto":
        return p.harmony_style
    if p.rhythm == "none" and p.space >= 0.7:
        return "ambient"
    if p.pad == "cinematic" or p.bass in ("drone", "sub_pulse"):
        return "cinematic"
    if p.texture == "vinyl_crackle" or p.melody == "ornamental":
        return "jazz"
    return "pop"


def template_family(style: str, mode: str) -> str:
    major = mode in MAJOR_ISH
    if style == "ambient":
        return "ambient"
    if style == "jazz":
        return "jazz_major" if major else "jazz_minor"
    if style == "cinematic":
        return "pop_major" if major else "cinematic_minor"
    return "pop_major" if major else "pop_minor"


def progression(p: RenderParams, duration_s: float, rng: np.random.Generator) -> list[Chord]:
    """Chords covering the render: one every `chord_change_bars` bars, a drawn 4-chord template repeated."""
    family = TEMPLATES[template_family(resolve_harmony_style(p), p.mode)]
    template = family[int(rng.integers(len(family)))]
    chord_s = p.chord_change_bars * 4 * 60.0 / p.bpm
    count = max(1, math.ceil(duration_s / chord_s - 1e-9))
    return [Chord(i * chord_s, chord_s, template[i % 4]) for i in range(count)]


def chord_tones(root_degree: int, extensions: str) -> list[int]:
    """Scale degrees of a chord: root, +2, +4 (+6 for sevenths; +6, +8 for lush)."""
    return [root_degree + k for k in EXTENSIONS[extensions]]


def chord_at(chords: list[Chord], t: float) -> Chord:
    index = min(len(chords) - 1, max(0, int(t // chords[0].dur_s)))
    return chords[index]


# --- pattern melodies ----------------------------------------------------------------------------


def pattern_melody(p: RenderParams, duration_s: float) -> list[Note]:
    """The fixed melody patterns: slots are duration/16 long (not tempo-locked); a note lasts until
    the next one (the last until the end)."""
    slot = duration_s / PATTERN_SLOTS
    style = PATTERN_ALIASES.get(p.melody, p.melody)
    if style == "ornamental":
        notes = []
        for i, (main, grace) in enumerate(zip(ORNAMENTAL_MAIN, ORNAMENTAL_GRACE, strict=True)):
            start = 4 * i * slot
            grace_s = min(0.12, 0.25 * slot)
            notes.append(Note(start, grace_s, degree_freq(p, grace, 5), 0.6))
            notes.append(Note(start + grace_s, 4 * slot - grace_s, degree_freq(p, main, 5), 1.0))
        return notes
    if style == "arp_melody":
        step = duration_s / (len(ARP_DEGREES) * 8)
        return [Note(i * step, step, degree_freq(p, ARP_DEGREES[i % 4], 4), 0.8) for i in range(len(ARP_DEGREES) * 8)]
    events = MELODY_PATTERNS[style]
    ends = [s for s, _ in events[1:]] + [PATTERN_SLOTS]
    pairs = zip(events, ends, strict=True)
    return [Note(s * slot, (end - s) * slot, degree_freq(p, deg, 5)) for (s, deg), end in pairs]


# --- procedural melody ---------------------------------------------------------------------------


def tension(curve: str, x: float) -> float:
    """Tension in [0, 1] at position x ∈ [0, 1] of the render: arc sin(πx), ramp x, waves ½−½cos(4πx)."""
    if curve == "ramp":
        return x
    if curve == "waves":
        return 0.5 - 0.5 * math.cos(4.0 * math.pi * x)
    return math.sin(math.pi * x)


def grid_beats(melody_density: float) -> float:
    """Melody grid: a beat below density 0.25, an 8th below 0.6, else a 16th."""
    if melody_density < 0.25:
        return 1.0
    if melody_density < 0.6:
        return 0.5
    return 0.25


@dataclass
class _Walker:
    """The melody's pitch state: a scale degree counted from the root at `register_min_oct`."""

    degree: int
    low: int
    high: int

    def move(self, rng: np.random.Generator, step_bias: float, lift: float) -> int:
        # Step (±1) with probability step_bias, else leap a 3rd to a 5th; tension lifts the line.
        size = 1 if rng.random() < step_bias else int(rng.integers(2, 5))
        up = rng.random() < 0.5 + 0.25 * (lift - 0.5)
        self.degree += size if up else -size
        if self.degree > self.high:  # reflect off the register edges
            self.degree = max(self.low, 2 * self.high - self.degree)
        if self.degree < self.low:
            self.degree = min(self.high, 2 * self.low - self.degree)
        return self.degree


def _nearest_chord_tone(degree: int, chord_degree: int, members: tuple[int, ...] = (0, 2, 4)) -> int:
    """The tone of the chord on `chord_degree` (any octave) closest to `degree` (ties go down)."""
    tones = [chord_degree + k + 7 * o for o in range(-2, 10) for k in members]
    return min(tones, key=lambda t: (abs(t - degree), t))


def procedural_melody(p: RenderParams, duration_s: float, chords: list[Chord], rng: np.random.Generator) -> list[Note]:
    """A tempo- and chord-aware melody on a beat grid.

    Per grid slot: hit probability .10 + .80·melody_density + .20·tension, raised by syncopation off
    the beat and lowered on it; steps vs leaps by step_bias; on-beat notes snap to the chord; the last
    bar of each phrase is a cadence (a long chord-root note) with probability cadence_strength; a
    phrase repeats the previous one with probability motif_repeat_prob; swing delays odd 8ths by
    swing·0.12 beat; chromatic_prob bends off-beat notes a semitone.
    """
    beat = 60.0 / p.bpm
    bar_beats = 4
    phrase_beats = p.phrase_len_bars * bar_beats
    grid = grid_beats(p.melody_density)
    span = max(1, p.register_max_oct - p.register_min_oct)
    walker = _Walker(degree=int(rng.integers(0, 5)), low=0, high=7 * span)
    total_beats = duration_s / beat
    n_phrases = max(1, math.ceil(total_beats / phrase_beats))

    # events per phrase: (beat offset within phrase, degree, semitones, length in beats, velocity)
    previous: list[tuple[float, int, int, float, float]] | None = None
    notes: list[Note] = []
    for phrase in range(n_phrases):
        phrase_start = phrase * phrase_beats
        if previous is not None and rng.random() < p.motif_repeat_prob:
            events = previous
        else:
            events = []
            slots = np.arange(0.0, phrase_beats, grid)
            cadence = rng.random() < p.cadence_strength
            cadence_from = phrase_beats - bar_beats
            for offset in slots:
                t_s = (phrase_start + offset) * beat
                if t_s >= duration_s:
                    break
                chord = chord_at(chords, t_s)
                if cadence and offset >= cadence_from:
                    if offset == cadence_from:
                        root = _nearest_chord_tone(walker.degree, chord.degree, (0,))
                        walker.degree = min(walker.high, max(walker.low, root))
                        events.append((offset, walker.degree, 0, float(bar_beats), 0.9))
                    continue
                on_beat = float(offset).is_integer()
                x = t_s / duration_s
                t_now = tension(p.tension_curve, x)
                prob = 0.10 + 0.80 * p.melody_density + 0.20 * t_now
                prob += -0.3 * p.syncopation if on_beat else 0.3 * p.syncopation
                if rng.random() >= min(1.0, max(0.0, prob)):
                    continue
                degree = walker.move(rng, p.step_bias, t_now)
                semis = 0
                if on_beat and rng.random() < 0.6:
                    tone = _nearest_chord_tone(degree, chord.degree)
                    degree = walker.degree = min(walker.high, max(walker.low, tone))
                elif not on_beat and rng.random() < p.chromatic_prob:
                    semis = 1 if rng.random() < 0.5 else -1
                velocity = (0.85 if on_beat else 0.65) + 0.15 * t_now
                events.append((float(offset), degree, semis, grid, velocity))
            # each note rings until the next (at most two beats)
            for i, event in enumerate(events[:-1]):
                gap = events[i + 1][0] - event[0]
                events[i] = (event[0], event[1], event[2], min(2.0, max(event[3], gap)), event[4])
        previous = events
        for offset, degree, semis, length, velocity in events:
            start_beats = phrase_start + offset
            if (start_beats * 2).is_integer() and int(start_beats * 2) % 2 == 1:  # odd 8th: swing it
                start_beats += p.swing * 0.12
            start_s = start_beats * beat
            if start_s >= duration_s:
                continue
            freq = degree_freq(p, degree, p.register_min_oct, semis)
            notes.append(Note(start_s, 0.9 * length * beat, freq, velocity))
    return notes
