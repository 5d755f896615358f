"""The music config: the 34 fields an LLM fills in (each a label or a small int) and the renderer
reads, its validation with one-line errors, and the JSON helpers both the config and the payload
(payload.py) are parsed with.

Validation errors become one `MusicConfigError` line naming the field path, e.g.
`config.tempo: 'warp' is not one of very_slow, slow, medium, fast, very_fast`.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assay.config import validation_message
from assay.errors import AssayError


class MusicConfigError(AssayError):
    """A music config or payload is not valid JSON or does not match the schema."""


# --- labels --------------------------------------------------------------------------------------

Tempo = Literal["very_slow", "slow", "medium", "fast", "very_fast"]
Brightness = Literal["very_dark", "dark", "medium", "bright", "very_bright"]
Space = Literal["dry", "small", "medium", "large", "vast"]
Motion = Literal["static", "slow", "medium", "fast", "chaotic"]
Stereo = Literal["mono", "narrow", "medium", "wide", "ultra_wide"]
Echo = Literal["none", "subtle", "medium", "heavy", "infinite"]
Human = Literal["robotic", "tight", "natural", "loose", "drunk"]
MelodyDensity = Literal["very_sparse", "sparse", "medium", "busy", "very_busy"]
Syncopation = Literal["straight", "light", "medium", "heavy"]
Swing = Literal["none", "light", "medium", "heavy"]
MotifRepeat = Literal["rare", "sometimes", "often"]
StepBias = Literal["step", "balanced", "leapy"]
Chromatic = Literal["none", "light", "medium", "heavy"]
Cadence = Literal["weak", "medium", "strong"]
ChordChange = Literal["very_slow", "slow", "medium", "fast"]

Root = Literal["c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b"]
Mode = Literal["major", "minor", "dorian", "mixolydian"]
Density = Literal[2, 3, 4, 5, 6]
Bass = Literal["drone", "sustained", "pulsing", "walking", "fifth_drone", "sub_pulse", "octave", "arp_bass"]
Pad = Literal["warm_slow", "dark_sustained", "cinematic", "thin_high", "ambient_drift", "stacked_fifths", "bright_open"]
Melody = Literal[
    "procedural",
    "contemplative",
    "rising",
    "falling",
    "minimal",
    "ornamental",
    "arp_melody",
    "contemplative_minor",
    "call_response",
    "heroic",
]
Rhythm = Literal[
    "none",
    "minimal",
    "heartbeat",
    "soft_four",
    "hats_only",
    "electronic",
    "kit_light",
    "kit_medium",
    "military",
    "tabla_essence",
    "brush",
]
Texture = Literal[
    "none",
    "shimmer",
    "shimmer_slow",
    "vinyl_crackle",
    "breath",
    "stars",
    "glitch",
    "noise_wash",
    "crystal",
    "pad_whisper",
]
Accent = Literal[
    "none",
    "bells",
    "pluck",
    "chime",
    "bells_dense",
    "blip",
    "blip_random",
    "brass_hit",
    "wind",
    "arp_accent",
    "piano_note",
]
Attack = Literal["soft", "medium", "sharp"]
Grain = Literal["clean", "warm", "gritty"]
MelodyEngine = Literal["pattern", "procedural"]
PhraseLen = Literal[2, 4, 8]
TensionCurve = Literal["arc", "ramp", "waves"]
HarmonyStyle = Literal["auto", "pop", "jazz", "cinematic", "ambient"]
ChordExtensions = Literal["triads", "sevenths", "lush"]

Octave = Annotated[int, Field(ge=1, le=8)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MusicConfigPrompt(StrictModel):
    """The 34-field music config, in the order the LLM is asked to write it."""

    tempo: Tempo = Field(description="Speed of the pulse.")
    root: Root = Field(description="Key root note.")
    mode: Mode = Field(description="Scale mode.")
    brightness: Brightness = Field(description="Tone color, dark to bright.")
    space: Space = Field(description="Reverb size.")
    density: Density = Field(description="Number of layers (2 sparse to 6 full).")
    bass: Bass = Field(description="Bass style.")
    pad: Pad = Field(description="Pad (sustained chords) style.")
    melody: Melody = Field(description="Melody style.")
    rhythm: Rhythm = Field(description="Percussion style.")
    texture: Texture = Field(description="Background texture.")
    accent: Accent = Field(description="Sparse accent sounds.")
    motion: Motion = Field(description="How fast things modulate.")
    attack: Attack = Field(description="Note onsets, soft to sharp.")
    stereo: Stereo = Field(description="Stereo width.")
    depth: bool = Field(description="Add a sub-bass pulse.")
    echo: Echo = Field(description="Delay amount.")
    human: Human = Field(description="Timing/volume looseness.")
    grain: Grain = Field(description="Oscillator character.")
    melody_engine: MelodyEngine = Field(description="Fixed pattern or generated melody.")
    phrase_len_bars: PhraseLen = Field(description="Phrase length in bars.")
    melody_density: MelodyDensity = Field(description="Notes per phrase.")
    syncopation: Syncopation = Field(description="Off-beat emphasis.")
    swing: Swing = Field(description="Swing feel.")
    motif_repeat_prob: MotifRepeat = Field(description="How often motifs repeat.")
    step_bias: StepBias = Field(description="Stepwise vs leaping melody.")
    chromatic_prob: Chromatic = Field(description="Notes outside the scale.")
    cadence_strength: Cadence = Field(description="How strongly phrases resolve.")
    register_min_oct: Octave = Field(description="Lowest melody octave (1-8).")
    register_max_oct: Octave = Field(description="Highest melody octave (1-8).")
    tension_curve: TensionCurve = Field(description="Shape of intensity over time.")
    harmony_style: HarmonyStyle = Field(description="Chord progression family.")
    chord_change_bars: ChordChange = Field(description="How often chords change.")
    chord_extensions: ChordExtensions = Field(description="Chord richness.")


CONFIG_FIELDS: tuple[str, ...] = tuple(MusicConfigPrompt.model_fields)


def allowed_values(field: str) -> tuple[Any, ...]:
    """The labels (or ints) a config field accepts, in schema order; () for non-Literal fields."""
    info = MusicConfigPrompt.model_fields.get(field)
    return get_args(info.annotation) if info is not None else ()


def strip_fence(text: str) -> str:
    """Drop a surrounding ``` / ```json Markdown fence, if any."""
    text = text.strip()
    match = re.match(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", text, flags=re.DOTALL)
    return match.group(1).strip() if match else text


def loads_json(text: str) -> Any:
    """Parse JSON text (a ``` fence around it is allowed); MusicConfigError on malformed JSON."""
    try:
        return json.loads(strip_fence(text))
    except json.JSONDecodeError as exc:
        raise MusicConfigError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def as_object(obj: dict | str, what: str) -> dict:
    if isinstance(obj, str):
        obj = loads_json(obj)
    if not isinstance(obj, dict):
        raise MusicConfigError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def parse_config(obj: dict | str) -> MusicConfigPrompt:
    """Validate a bare 34-field config (dict or JSON text); error paths start with `config.`."""
    obj = as_object(obj, "config")
    try:
        return MusicConfigPrompt.model_validate(obj)
    except ValidationError as exc:
        raise MusicConfigError(validation_message(exc, prefix="config", root="config", limit=1)) from None
