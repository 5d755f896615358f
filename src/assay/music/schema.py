"""The music-config schema an LLM fills in, its validation and repair, and the label → number tables.

Three layers, outermost first:

- `MusicConfigPromptPayload`: what the LLM returns — `thinking`, `title`, `config`, `palettes`.
- `MusicConfigPrompt`: the 34-field config, every field a label (or a small int), all required.
- `SynthParams`: the same config with the 15 ordinal labels turned into floats, clamped, ready for
  the synthesizer (`synth_params`).

Validation errors become one `MusicConfigError` line naming the field path, e.g.
`config.tempo: 'warp' is not one of very_slow, slow, medium, fast, very_fast`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
Weight = Literal["xs", "sm", "md", "lg", "xl", "xxl"]

Octave = Annotated[int, Field(ge=1, le=8)]

# Ordinal label → float (spec §2a); the synthesizer reads only these numbers.
ORDINAL_VALUES: dict[str, dict[str, float]] = {
    "tempo": {"very_slow": 0.15, "slow": 0.30, "medium": 0.50, "fast": 0.70, "very_fast": 0.90},
    "brightness": {"very_dark": 0.1, "dark": 0.3, "medium": 0.5, "bright": 0.7, "very_bright": 0.9},
    "space": {"dry": 0.1, "small": 0.3, "medium": 0.5, "large": 0.7, "vast": 0.95},
    "motion": {"static": 0.1, "slow": 0.3, "medium": 0.5, "fast": 0.7, "chaotic": 0.9},
    "stereo": {"mono": 0.0, "narrow": 0.25, "medium": 0.5, "wide": 0.75, "ultra_wide": 1.0},
    "echo": {"none": 0.0, "subtle": 0.25, "medium": 0.5, "heavy": 0.75, "infinite": 0.95},
    "human": {"robotic": 0.0, "tight": 0.15, "natural": 0.3, "loose": 0.5, "drunk": 0.8},
    "melody_density": {"very_sparse": 0.15, "sparse": 0.30, "medium": 0.50, "busy": 0.70, "very_busy": 0.85},
    "syncopation": {"straight": 0.0, "light": 0.2, "medium": 0.5, "heavy": 0.8},
    "swing": {"none": 0.0, "light": 0.2, "medium": 0.5, "heavy": 0.8},
    "motif_repeat_prob": {"rare": 0.2, "sometimes": 0.5, "often": 0.8},
    "step_bias": {"step": 0.9, "balanced": 0.7, "leapy": 0.4},
    "chromatic_prob": {"none": 0.0, "light": 0.05, "medium": 0.12, "heavy": 0.25},
    "cadence_strength": {"weak": 0.3, "medium": 0.6, "strong": 0.9},
    "chord_change_bars": {"very_slow": 4, "slow": 2, "medium": 1, "fast": 1},
}

# What the sanitizer puts in place of an unknown ordinal label (spec §5).
SANITIZE_DEFAULTS: dict[str, str] = {
    "tempo": "medium",
    "brightness": "medium",
    "space": "medium",
    "motion": "medium",
    "stereo": "medium",
    "echo": "medium",
    "human": "robotic",
    "melody_density": "medium",
    "syncopation": "medium",
    "swing": "none",
    "motif_repeat_prob": "sometimes",
    "step_bias": "balanced",
    "chromatic_prob": "none",
    "cadence_strength": "medium",
    "chord_change_bars": "medium",
}

# Heaviest first; colors are sorted by this rank on validation.
WEIGHT_RANK: dict[str, int] = {"xxl": 0, "xl": 1, "lg": 2, "md": 3, "sm": 4, "xs": 5}

TITLE_MAX_WORDS = 6
TITLE_MAX_CHARS = 60
THINKING_MAX_CHARS = 1000
HEX_PATTERN = r"^#[0-9a-fA-F]{6}$"


# --- models --------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MusicConfigPrompt(_Strict):
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


class Color(_Strict):
    hex: str = Field(pattern=HEX_PATTERN, description="#rrggbb")
    weight: Weight = Field(description="Share of the palette, xs to xxl.")


class Palette(_Strict):
    colors: list[Color] = Field(min_length=5, max_length=5, description="5 unique colors, heaviest first.")

    @field_validator("colors")
    @classmethod
    def _heaviest_first(cls, colors: list[Color]) -> list[Color]:
        return sorted(colors, key=lambda c: WEIGHT_RANK[c.weight])  # sorted() is stable


class MusicConfigPromptPayload(_Strict):
    """The LLM's whole answer: reasoning, a short title, the config and three color palettes."""

    thinking: str = Field(max_length=THINKING_MAX_CHARS, description="Brief reasoning about the vibe.")
    # The word limit is checked by the validator below; the pattern states it in the JSON Schema
    # too (single spaces, slightly stricter), so schema-guided decoders and API models see it.
    title: str = Field(
        min_length=1,
        max_length=TITLE_MAX_CHARS,
        description="1-6 word title.",
        json_schema_extra={"pattern": r"^\S+( \S+){0,5}$"},
    )
    config: MusicConfigPrompt
    palettes: list[Palette] = Field(min_length=3, max_length=3, description="Exactly 3 palettes.")

    @field_validator("title")
    @classmethod
    def _title_words(cls, title: str) -> str:
        words = title.split()
        if not words:
            raise ValueError("title is blank")
        if len(words) > TITLE_MAX_WORDS:
            raise ValueError(f"title has {len(words)} words (at most {TITLE_MAX_WORDS})")
        return title


CONFIG_FIELDS: tuple[str, ...] = tuple(MusicConfigPrompt.model_fields)
PAYLOAD_KEYS = frozenset(MusicConfigPromptPayload.model_fields)


def allowed_values(field: str) -> tuple[Any, ...]:
    """The labels (or ints) a config field accepts, in schema order; () for non-Literal fields."""
    info = MusicConfigPrompt.model_fields.get(field)
    return get_args(info.annotation) if info is not None else ()


def payload_json_schema() -> dict[str, Any]:
    """The JSON Schema of `MusicConfigPromptPayload` (goes into the LLM system prompt)."""
    return MusicConfigPromptPayload.model_json_schema()


def schema_hash() -> str:
    """sha256 (hex) of the payload JSON Schema, serialised with sorted keys and compact separators."""
    text = json.dumps(payload_json_schema(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- parsing -------------------------------------------------------------------------------------


def _error_line(exc: ValidationError, prefix: str = "") -> str:
    """The first validation error as `path: message`, plus how many others there were."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(p) for p in first["loc"]]
    path = ".".join([prefix, *loc] if prefix else loc) or "payload"
    kind, value = first["type"], first.get("input")
    if kind == "literal_error":
        options = _literal_options(loc)
        message = f"{value!r} is not one of {options}" if options else first["msg"]
    elif kind == "missing":
        message = "field required"
    elif kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "string_pattern_mismatch":
        message = f"{value!r} is not a #rrggbb hex color"
    elif kind == "value_error":
        message = str(first["ctx"]["error"]) if "ctx" in first else first["msg"]
    else:
        message = first["msg"][:1].lower() + first["msg"][1:]
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return f"{path}: {message}{more}"


def _literal_options(loc: list[str]) -> str:
    name = loc[-1]
    values = get_args(Weight) if name == "weight" else allowed_values(name)
    return ", ".join(str(v) for v in values)


def _as_object(obj: dict | str, what: str) -> dict:
    if isinstance(obj, str):
        obj = loads_json(obj)
    if not isinstance(obj, dict):
        raise MusicConfigError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


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
        raise MusicConfigError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def parse_payload(obj: dict | str) -> MusicConfigPromptPayload:
    """Validate a full LLM payload (dict or JSON text)."""
    obj = _as_object(obj, "payload")
    try:
        return MusicConfigPromptPayload.model_validate(obj)
    except ValidationError as exc:
        raise MusicConfigError(_error_line(exc)) from None


def parse_config(obj: dict | str) -> MusicConfigPrompt:
    """Validate a bare 34-field config (dict or JSON text); error paths start with `config.`."""
    obj = _as_object(obj, "config")
    try:
        return MusicConfigPrompt.model_validate(obj)
    except ValidationError as exc:
        raise MusicConfigError(_error_line(exc, prefix="config")) from None


def load_music_json(obj: dict | str) -> tuple[MusicConfigPrompt, MusicConfigPromptPayload | None]:
    """Accept either a bare config or a full payload: (config, payload or None)."""
    obj = _as_object(obj, "config")
    if PAYLOAD_KEYS & obj.keys():
        payload = parse_payload(obj)
        return payload.config, payload
    return parse_config(obj), None


# --- validity checks on raw LLM text -------------------------------------------------------------


def _palettes_ok(obj: Any) -> bool:
    palettes = obj.get("palettes") if isinstance(obj, dict) else None
    if not isinstance(palettes, list) or len(palettes) != 3:
        return False
    for palette in palettes:
        colors = palette.get("colors") if isinstance(palette, dict) else None
        if not isinstance(colors, list) or len(colors) != 5:
            return False
        for color in colors:
            hex_ = color.get("hex") if isinstance(color, dict) else None
            if not isinstance(hex_, str) or not re.fullmatch(HEX_PATTERN, hex_):
                return False
    return True


def format_valid(text: str) -> int:
    """1 if `text` (a ``` fence allowed) parses as a JSON object, else 0."""
    try:
        return int(isinstance(loads_json(text), dict))
    except MusicConfigError:
        return 0


def schema_valid(obj: Any) -> int:
    """1 if `obj` validates as a `MusicConfigPromptPayload`, else 0."""
    try:
        parse_payload(obj)
    except MusicConfigError:
        return 0
    return 1


def palette_valid(obj: Any) -> int:
    """1 if `obj` has exactly 3 palettes of exactly 5 colors, each with a #rrggbb hex, else 0."""
    return int(_palettes_ok(obj))


def validity(text: str) -> dict[str, Any]:
    """The three 0/1 checks on raw LLM text, the first error line and the validated payload.

    Returns `{format_valid, schema_valid, palette_valid, error, payload}`; `payload` is the
    validated payload as a dict (colors sorted heaviest first) or None when schema_valid is 0.
    """
    out: dict[str, Any] = {"format_valid": 0, "schema_valid": 0, "palette_valid": 0, "error": None, "payload": None}
    try:
        obj = loads_json(text)
    except MusicConfigError as exc:
        out["error"] = str(exc)
        return out
    if not isinstance(obj, dict):
        out["error"] = f"payload: expected a JSON object, got {type(obj).__name__}"
        return out
    out["format_valid"] = 1
    out["palette_valid"] = palette_valid(obj)
    try:
        out["payload"] = parse_payload(obj).model_dump()
        out["schema_valid"] = 1
    except MusicConfigError as exc:
        out["error"] = str(exc)
    return out


# --- repair --------------------------------------------------------------------------------------


def _snap_phrase(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return min((2, 4, 8), key=lambda n: abs(n - value))  # ties go to the shorter phrase


def _clamp_int(value: Any, low: int, high: int) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN stays
        return value
    return int(min(high, max(low, round(value))))


def sanitize_payload(obj: dict) -> dict:
    """Repair common LLM slips before validation (spec §5); returns a new dict, input untouched.

    Title cut to ≤6 words and ≤60 chars ("Untitled" if empty); thinking cut to 1000 chars; density
    clamped to 2–6; octaves to 1–8; phrase_len_bars snapped to 2/4/8; an unknown label in one of
    the 15 ordinal fields replaced by its default. Style, root and mode labels are not repaired.
    """
    out = dict(obj)
    if isinstance(out.get("title"), str):
        title = " ".join(out["title"].split()[:TITLE_MAX_WORDS])[:TITLE_MAX_CHARS].strip()
        out["title"] = title or "Untitled"
    if isinstance(out.get("thinking"), str):
        out["thinking"] = out["thinking"][:THINKING_MAX_CHARS]
    if isinstance(out.get("config"), dict):
        config = dict(out["config"])
        if "density" in config:
            config["density"] = _clamp_int(config["density"], 2, 6)
        for key in ("register_min_oct", "register_max_oct"):
            if key in config:
                config[key] = _clamp_int(config[key], 1, 8)
        if "phrase_len_bars" in config:
            config["phrase_len_bars"] = _snap_phrase(config["phrase_len_bars"])
        for key, default in SANITIZE_DEFAULTS.items():
            if key in config and config[key] not in ORDINAL_VALUES[key]:
                config[key] = default
        out["config"] = config
    return out


def _shift_hex(hex_: str, amount: int) -> str:
    rgb = [min(255, max(0, int(hex_[i : i + 2], 16) + amount)) for i in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def dedupe_palette_hexes(payload: MusicConfigPromptPayload | dict) -> MusicConfigPromptPayload | dict:
    """Make repeated hexes within a palette distinct: the 2nd, 3rd… copy gets +3, +6… on R, G and B.

    Comparison is case-insensitive; shifted hexes are written lowercase (clamped to 0–255) and not
    re-checked against the rest of the palette. Accepts and returns a payload model or a dict.
    """
    is_model = isinstance(payload, MusicConfigPromptPayload)
    data = payload.model_dump() if is_model else json.loads(json.dumps(payload))
    palettes = data.get("palettes") if isinstance(data.get("palettes"), list) else []
    for palette in palettes:
        colors = palette.get("colors") if isinstance(palette, dict) else None
        seen: dict[str, int] = {}
        for color in colors if isinstance(colors, list) else []:
            hex_ = color.get("hex") if isinstance(color, dict) else None
            if not isinstance(hex_, str) or not re.fullmatch(HEX_PATTERN, hex_):
                continue
            key = hex_.lower()
            count = seen.get(key, 0)
            seen[key] = count + 1
            if count:
                color["hex"] = _shift_hex(hex_, 3 * count)
    return MusicConfigPromptPayload.model_validate(data) if is_model else data


# --- prompt config → synthesizer parameters ------------------------------------------------------


@dataclass(frozen=True)
class SynthParams:
    """The config as the synthesizer reads it: ordinal labels as floats in [0, 1], clamped."""

    tempo: float
    root: str
    mode: str
    brightness: float
    space: float
    density: int
    bass: str
    pad: str
    melody: str
    rhythm: str
    texture: str
    accent: str
    motion: float
    attack: str
    stereo: float
    depth: bool
    echo: float
    human: float
    grain: str
    melody_engine: str
    phrase_len_bars: int
    melody_density: float
    syncopation: float
    swing: float
    motif_repeat_prob: float
    step_bias: float
    chromatic_prob: float
    cadence_strength: float
    register_min_oct: int
    register_max_oct: int
    tension_curve: str
    harmony_style: str
    chord_change_bars: int
    chord_extensions: str

    @property
    def bpm(self) -> float:
        """Beats per minute: 55 + 110·tempo (71.5 … 154 for the five labels)."""
        return 55.0 + 110.0 * self.tempo


def _unit(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def synth_params(config: MusicConfigPrompt) -> SynthParams:
    """Turn a validated prompt config into synthesizer numbers (floats clamped to [0, 1], chord bars ≥ 1,
    density 2–6, octaves 1–8 and swapped if min > max)."""
    raw = config.model_dump()
    values: dict[str, Any] = dict(raw)
    for key, table in ORDINAL_VALUES.items():
        values[key] = table[raw[key]]
    for key in ORDINAL_VALUES:
        if key != "chord_change_bars":
            values[key] = _unit(values[key])
    values["chord_change_bars"] = max(1, int(values["chord_change_bars"]))
    values["density"] = int(min(6, max(2, raw["density"])))
    lo, hi = sorted((int(raw["register_min_oct"]), int(raw["register_max_oct"])))
    values["register_min_oct"], values["register_max_oct"] = max(1, lo), min(8, hi)
    values["phrase_len_bars"] = max(1, int(raw["phrase_len_bars"]))
    return SynthParams(**values)
