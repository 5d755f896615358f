"""A scripted LLM for the synth pipeline tests: answers vibe extraction, config generation and
judge requests with JSON that depends on the prompt (deterministically), and a share of broken
config answers so validity checks and best-of-N selection have work to do."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from assay.llm.testserver import Reply

PAYLOAD = json.loads((Path(__file__).parents[1] / "music" / "data" / "payload_valid.json").read_text())
MOODS = ["stormy", "tender", "solemn", "feverish", "drowsy", "bright", "grim", "playful", "eerie", "golden"]
PLACES = ["harbour", "chapel", "forest", "battlefield", "garden", "tower", "desert", "kitchen", "river", "court"]
TEMPOS = ["very_slow", "slow", "medium", "fast", "very_fast"]


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _kind(body: dict) -> str:
    system = body["messages"][0]["content"]
    if "atmosphere" in system:
        return "vibes"
    if "You judge" in system:
        return "judge"
    return "configs"


def answer(body: dict) -> str:
    user = body["messages"][-1]["content"]
    h = _digest(user + str(body.get("seed")))
    kind = _kind(body)
    if kind == "vibes":
        mood, place = MOODS[h % 10], PLACES[(h // 10) % 10]
        levels = {
            "xl": f"A {mood} {place} at dusk. The air is heavy and every sound carries far.",
            "lg": f"A {mood} {place}; slow time, distant voices.",
            "m": f"A {mood} mood in a {place}.",
            "sm": f"{mood} {place}",
            "xs": mood,
        }
        return json.dumps({"scene": levels, "characters": [], "tags": [mood]})
    if kind == "judge":
        return json.dumps({"thinking": "fits", "vibe_match": 0.25 + (h % 50) / 100, "audio_quality": 0.7})
    if h % 5 == 0:
        return '{"thinking": "oops", "title": "Broken'  # malformed JSON
    payload = json.loads(json.dumps(PAYLOAD))
    payload["title"] = f"Piece {h % 997}"
    payload["config"]["tempo"] = TEMPOS[h % 5]
    if h % 5 == 1:
        payload["config"]["tempo"] = "warp"  # schema-invalid
    return json.dumps(payload)


def responder(delay_s: float = 0.0):
    def respond(body: dict) -> Reply:
        return Reply(content=answer(body), delay_s=delay_s)

    return respond
