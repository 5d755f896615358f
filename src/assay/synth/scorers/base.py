"""The scorer protocol of the synthetic-data pipeline.

A scorer judges one music payload against the vibe it was made for and returns a dict with at
least `final_score` (a finite float, higher is better, unbounded: only the order matters for
best-of-N selection and GRPO). Anything else in the dict is kept as detail.

    class MyScorer(Scorer):
        name = "mine"
        def score(self, vibe: str, payload: dict) -> dict: ...

`ascore` runs `score` in a worker thread; scorers that call an LLM override `ascore` instead.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from assay.errors import AssayError


class ScorerError(AssayError):
    """A scorer is misconfigured or returned something that is not a score."""


def check_result(result: Any, source: str) -> dict[str, Any]:
    """The one validation of a scorer's output: a dict whose `final_score` is a finite number."""
    if not isinstance(result, dict):
        raise ScorerError(f"scorer {source} returned {type(result).__name__}, not a dict with 'final_score'")
    if "final_score" not in result:
        raise ScorerError(f"scorer {source} returned a dict without 'final_score' (keys: {sorted(result)})")
    value = result["final_score"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScorerError(f"scorer {source}: final_score must be a finite number, got {value!r}")
    return result | {"final_score": float(value)}


class Scorer:
    name: str = "scorer"

    def score(self, vibe: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def ascore(self, vibe: str, payload: dict[str, Any]) -> dict[str, Any]:
        return check_result(await asyncio.to_thread(self.score, vibe, payload), self.name)

    async def aclose(self) -> None:
        return None
