"""The reward of the seed (for best-of-N and, later, GRPO), computed from a model's raw answer:

    total = 0.2·format + 0.3·schema + 0.4·audio + 0.1·title_similarity
            - 0.2·[title too long] - 0.2·[duplicate colours in a palette]

- format: 1 if the answer parses as a JSON object;
- schema: 1 if it validates as a payload, else the share of checked fields without an error
  (1 - errors / 38: 4 payload keys + 34 config fields), so a nearly valid answer earns partial credit;
- audio: the offline audio scorer's similarity, clipped to [0, 1], computed only when schema >= 0.5
  (on the sanitised payload when the raw one is not fully valid);
- title_similarity: MiniLM cosine of title and vibe, clipped to [0, 1];
- penalties: the raw title has more than 6 words or 60 characters; a palette repeats a hex.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from assay.synth.scorers.base import Scorer

_CHECKED_FIELDS = 38


class RewardWeights(BaseModel):
    format: float = Field(0.2, ge=0, le=1)
    schema_: float = Field(0.3, ge=0, le=1, alias="schema")
    audio: float = Field(0.4, ge=0, le=1)
    title_similarity: float = Field(0.1, ge=0, le=1)
    title_length_penalty: float = Field(0.2, ge=0, le=1)
    palette_duplicate_penalty: float = Field(0.2, ge=0, le=1)
    schema_threshold_for_audio: float = Field(0.5, ge=0, le=1)


def schema_score(obj: Any) -> tuple[float, dict | None]:
    """(1.0, payload) if valid, else (partial credit, None)."""
    from pydantic import ValidationError

    from assay.music import MusicConfigPromptPayload

    if not isinstance(obj, dict):
        return 0.0, None
    try:
        return 1.0, MusicConfigPromptPayload.model_validate(obj).model_dump(mode="json")
    except ValidationError as exc:
        return max(0.0, 1.0 - exc.error_count() / _CHECKED_FIELDS), None


def reward(vibe: str, text: str, weights: RewardWeights | None = None, audio_scorer: Any = None) -> dict[str, Any]:
    """The reward breakdown of one raw answer; `final_score` is the total."""
    from assay.embeddings import similarity
    from assay.music import loads_json, sanitize_payload, validity

    w = weights or RewardWeights()
    check = validity(text)
    parsed = loads_json(text) if check["format_valid"] else None  # the same parse as format_valid
    schema, payload = schema_score(parsed)
    audio = 0.0
    if schema >= w.schema_threshold_for_audio and isinstance(parsed, dict):
        if payload is None:
            try:
                payload = schema_score(sanitize_payload(parsed))[1]
            except Exception:  # a payload beyond repair earns no audio credit
                payload = None
        if payload is not None:
            from assay.synth.scorers.audio import AudioScorer

            audio = max(0.0, min(1.0, (audio_scorer or AudioScorer()).score(vibe, payload)["final_score"]))
    title = parsed.get("title") if isinstance(parsed, dict) else None
    title_sim = max(0.0, similarity(title, vibe)) if isinstance(title, str) and title.strip() else 0.0
    too_long = isinstance(title, str) and (len(title) > 60 or len(title.split()) > 6)
    duplicate = False
    if isinstance(parsed, dict) and isinstance(parsed.get("palettes"), list):
        for palette in parsed["palettes"]:
            colors = palette.get("colors", []) if isinstance(palette, dict) else []
            hexes = [str(c.get("hex", "")).lower() for c in colors if isinstance(c, dict)]
            duplicate |= len(hexes) != len(set(hexes))
    total = (
        w.format * check["format_valid"]
        + w.schema_ * schema
        + w.audio * audio
        + w.title_similarity * title_sim
        - w.title_length_penalty * too_long
        - w.palette_duplicate_penalty * duplicate
    )
    return {
        "final_score": total,
        "format": float(check["format_valid"]),
        "schema": schema,
        "audio": audio,
        "title_similarity": title_sim,
        "title_too_long": too_long,
        "palette_duplicates": duplicate,
    }


class RewardScorer(Scorer):
    name = "reward"

    def __init__(self, weights: RewardWeights | None = None):
        from assay.synth.scorers.audio import AudioScorer

        self.weights, self.audio = weights or RewardWeights(), AudioScorer()

    def score(self, vibe: str, payload: dict[str, Any]) -> dict[str, Any]:
        return reward(vibe, json.dumps(payload), self.weights, self.audio)
