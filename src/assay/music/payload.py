"""The LLM-facing music payload: what a model returns for a vibe (`thinking`, `title`, the 34-field
`config`, three colour `palettes`), its JSON Schema, the validity checks the pipeline records for
raw model text, and the repairs (sanitize, palette dedupe). The config itself is config.py; how the
renderer reads it, params.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from assay.config import validation_message
from assay.music.config import (
    MusicConfigError,
    MusicConfigPrompt,
    StrictModel,
    allowed_values,
    as_object,
    loads_json,
    parse_config,
)

Weight = Literal["xs", "sm", "md", "lg", "xl", "xxl"]

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


class Color(StrictModel):
    hex: str = Field(pattern=HEX_PATTERN, description="#rrggbb")
    weight: Weight = Field(description="Share of the palette, xs to xxl.")


class Palette(StrictModel):
    colors: list[Color] = Field(min_length=5, max_length=5, description="5 unique colors, heaviest first.")

    @field_validator("colors")
    @classmethod
    def _heaviest_first(cls, colors: list[Color]) -> list[Color]:
        return sorted(colors, key=lambda c: WEIGHT_RANK[c.weight])  # sorted() is stable


class MusicConfigPromptPayload(StrictModel):
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


PAYLOAD_KEYS = frozenset(MusicConfigPromptPayload.model_fields)


def payload_json_schema() -> dict[str, Any]:
    """The JSON Schema of `MusicConfigPromptPayload` (goes into the LLM system prompt)."""
    return MusicConfigPromptPayload.model_json_schema()


def schema_hash() -> str:
    """sha256 (hex) of the payload JSON Schema, serialised with sorted keys and compact separators."""
    text = json.dumps(payload_json_schema(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_payload(obj: dict | str) -> MusicConfigPromptPayload:
    """Validate a full LLM payload (dict or JSON text)."""
    obj = as_object(obj, "payload")
    try:
        return MusicConfigPromptPayload.model_validate(obj)
    except ValidationError as exc:
        raise MusicConfigError(validation_message(exc, root="payload", limit=1)) from None


def load_music_json(obj: dict | str) -> tuple[MusicConfigPrompt, MusicConfigPromptPayload | None]:
    """Accept either a bare config or a full payload: (config, payload or None)."""
    obj = as_object(obj, "config")
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
            if key in config and config[key] not in allowed_values(key):
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
