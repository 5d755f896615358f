"""The JSON answer of vibe extraction (`assay synth vibes`): five levels of a vibe, up to N
characters, tags (an enum of a vocabulary under guided decoding). Shared by the step and by the
quality measures, which need its key names (a small model echoes them as tags)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

LEVELS = ("xl", "lg", "m", "sm", "xs")


# Length bounds per level, in characters (what JSON Schema can state and guided decoding enforces):
# long enough to say something, short enough that a small model cannot loop for long.


class VibeLevels(BaseModel):
    model_config = ConfigDict(extra="forbid")
    xl: str = Field(min_length=60, max_length=400, description="3-4 sentences: setting, mood, pace, sounds, arc")
    lg: str = Field(min_length=30, max_length=250, description="2 sentences: the mood and its texture")
    m: str = Field(min_length=20, max_length=150, description="one sentence")
    sm: str = Field(min_length=6, max_length=60, description="a short phrase")
    xs: str = Field(min_length=3, max_length=30, description="1-3 words")


class CharacterVibe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=40)
    vibes: VibeLevels


def extraction_model(max_characters: int, tags: Sequence[str] | None = None) -> type[BaseModel]:
    """The structured answer: scene vibes, up to `max_characters` character vibes, tags. With `tags`
    (a vocabulary), each tag must be one of them: a JSON Schema enum, so guided decoding can only
    write those words. Tags come last, so a model picks them after it has described the scene."""
    item: Any = Literal.__getitem__(tuple(tags)) if tags else str
    return create_model(
        "VibeExtraction",
        __config__=ConfigDict(extra="forbid"),
        scene=(VibeLevels, ...),
        characters=(list[CharacterVibe], Field(max_length=max_characters)),
        tags=(list[item], Field(min_length=1, max_length=6, description="mood words, lowercase")),
    )
