"""Custom scorers: `path/to/file.py:function` with `function(vibe: str, config: dict) -> dict`
returning at least `{"final_score": float}`. The file is imported once; the signature is checked
up front and every result is validated (`check_result`)."""

from __future__ import annotations

from typing import Any

from assay.plugins import load_function
from assay.synth.scorers.base import Scorer, ScorerError, check_result


class CustomScorer(Scorer):
    def __init__(self, spec: str):
        self.func = load_function(spec, "scorer", ("vibe", {}), "(vibe: str, config: dict) -> dict", ScorerError)
        self.name = spec

    def score(self, vibe: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            result = self.func(vibe, payload)
        except Exception as exc:
            raise ScorerError(f"custom scorer {self.name} raised {type(exc).__name__}: {exc}") from None
        return check_result(result, self.name)
