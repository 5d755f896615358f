"""Scorer backed by an assay judge (`assay.Judge`, a trained sequence scorer): scores the text of
the payload -- its `thinking` and `title` -- for how machine-written it reads. `final_score` =
1 - judge score, so more human-like writing scores higher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay.synth.scorers.base import Scorer


class AssayJudgeScorer(Scorer):
    name = "assay_judge"

    def __init__(self, judge_dir: str | Path):
        from assay.judges import Judge

        self.judge = Judge.load(judge_dir)

    def score(self, vibe: str, payload: dict[str, Any]) -> dict[str, Any]:
        text = " ".join(str(payload.get(k, "")) for k in ("title", "thinking")).strip() or vibe
        result = self.judge.score([text])[0]
        return {"final_score": 1.0 - float(result["score"]), "judge_score": float(result["score"])}
