"""The LLM rating scorer (`llm_judge`, LLM-as-a-judge): an LLM reads the vibe and the music payload
(it cannot hear the audio) and rates `vibe_match` and `audio_quality` in [0, 1]; `final_score` is
their harmonic mean, so a config must do well on both."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from assay.synth.scorers.base import Scorer, ScorerError, check_result

SYSTEM = """You judge generative ambient music configs. You are given a vibe (a mood in words) and a \
JSON music config (tempo, key, mode, instruments, texture, effects, colour palettes). Rate:
- vibe_match: how well the music this config makes would fit the vibe (0 = not at all, 1 = perfectly);
- audio_quality: how pleasant and coherent it would likely sound (0 = bad, 1 = excellent).
Answer with one JSON object only: {"thinking": "<at most 500 characters>", "vibe_match": <0..1>, \
"audio_quality": <0..1>}"""


class RatingAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thinking: str = Field(max_length=500)
    vibe_match: float = Field(ge=0, le=1)
    audio_quality: float = Field(ge=0, le=1)


def harmonic_mean(a: float, b: float) -> float:
    return 0.0 if a + b <= 0 else 2 * a * b / (a + b)


class LLMRatingScorer(Scorer):
    name = "llm_judge"

    def __init__(self, llm_settings: Any, temperature: float = 0.0, seed: int = 0):
        from assay.llm.client import LLMClient

        self.settings, self.temperature, self.seed = llm_settings, temperature, seed
        self.client = LLMClient(llm_settings)

    def messages(self, vibe: str, payload: dict[str, Any]) -> list[dict[str, str]]:
        shown = {k: payload[k] for k in ("title", "config", "palettes") if k in payload} or payload
        user = f"<vibe>{vibe}</vibe>\n<config>{json.dumps(shown, separators=(',', ':'))}</config>"
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    async def ascore(self, vibe: str, payload: dict[str, Any]) -> dict[str, Any]:
        from assay.llm.types import ChatRequest

        request = ChatRequest(
            model=self.settings.model,
            messages=self.messages(vibe, payload),
            temperature=self.temperature,
            max_tokens=400,
            seed=self.seed,
            json_schema=RatingAnswer.model_json_schema(),
            schema_name="judgement",
        )
        result = await self.client.complete_json(request, RatingAnswer)
        if result.value is None:
            raise ScorerError(f"llm_judge: no valid judgement after {result.attempts} attempt(s): {result.error}")
        answer = result.value
        return check_result(
            {
                "final_score": harmonic_mean(answer.vibe_match, answer.audio_quality),
                "vibe_match": answer.vibe_match,
                "audio_quality": answer.audio_quality,
                "thinking": answer.thinking,
            },
            self.name,
        )

    def score(self, vibe: str, payload: dict[str, Any]) -> dict[str, Any]:
        import asyncio

        return asyncio.run(self.ascore(vibe, payload))

    async def aclose(self) -> None:
        await self.client.aclose()
