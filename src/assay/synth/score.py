"""`assay synth score`: score every valid candidate with one or more scorers, then re-select.

Scorers (`--scorers audio,llm_judge,...`, the first is primary):
`audio` (offline audio scorer), `reward` (the seed's reward), `llm_judge` (needs the LLM options),
`assay_judge` (needs `judge_dir`), or a custom `path/to/file.py:function`.

Per row: `candidate_scores[i]` = {scorer: result} for each valid candidate i (None for invalid
ones); the primary scorer's best candidate becomes `best_index` / `config_payload`, and `score`
holds each scorer's `final_score` of that winner. Rows without a valid candidate pass through.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field

from assay.config import Section
from assay.errors import DataError
from assay.io import read_jsonl
from assay.pipeline.step import SplitFilesStep, run_step
from assay.synth.scorers.base import Scorer, ScorerError

SPLIT_FILES = ("TEST", "SFT-Val", "GRPO", "SFT-Train")


class ScoreConfig(Section):
    scorers: list[str] = Field(["audio"], description="audio, reward, llm_judge, assay_judge or file.py:function")
    judge_dir: Path | None = Field(None, description="The assay judge run used by the assay_judge scorer.")
    audio_duration: float = Field(8.0, gt=0, le=120, description="Seconds rendered per config by the audio scorer.")
    vibe_field: str = "vibe_original"
    splits: list[str] = Field(list(SPLIT_FILES))


def build_scorers(config: ScoreConfig, llm_settings: Any = None) -> list[Scorer]:
    if not config.scorers:
        raise ScorerError("give at least one scorer")
    scorers: list[Scorer] = []
    for name in config.scorers:
        if name == "audio":
            from assay.synth.scorers.audio import AudioScorer

            scorers.append(AudioScorer(duration=config.audio_duration))
        elif name == "reward":
            from assay.synth.scorers.reward import RewardScorer

            scorers.append(RewardScorer())
        elif name == "llm_judge":
            from assay.synth.scorers.llm_rating import LLMRatingScorer

            if llm_settings is None:
                raise ScorerError("the llm_judge scorer needs the LLM options (--model ...)")
            scorers.append(LLMRatingScorer(llm_settings))
        elif name == "assay_judge":
            from assay.synth.scorers.assay_judge import AssayJudgeScorer

            if config.judge_dir is None:
                raise ScorerError("the assay_judge scorer needs --judge-dir (a judge run made by `assay train`)")
            scorers.append(AssayJudgeScorer(config.judge_dir))
        elif ".py:" in name:
            from assay.synth.scorers.custom import CustomScorer

            scorers.append(CustomScorer(name))
        else:
            raise ScorerError(f"unknown scorer {name!r}: use audio, reward, llm_judge, assay_judge or file.py:function")
    return scorers


def valid_indices(row: dict[str, Any]) -> list[int]:
    scores = row.get("scores") or {}
    n = len(row.get("config_candidates") or [])
    return [
        i
        for i in range(n)
        if all((scores.get(k) or [0] * n)[i] for k in ("format_valid", "schema_valid", "palette_valid"))
        and row["config_candidates"][i] is not None
    ]


async def score_row(row: dict[str, Any], scorers: list[Scorer], vibe_field: str) -> dict[str, Any]:
    import asyncio

    if "config_candidates" not in row:
        raise DataError(f"row {row.get('row_id')}: no config_candidates (made by `assay synth configs`?)")
    vibe = row.get(vibe_field)
    if not isinstance(vibe, str):
        raise DataError(f"row {row.get('row_id')}: no vibe in field {vibe_field!r}")
    valid = valid_indices(row)
    candidate_scores: list[dict[str, Any] | None] = [None] * len(row["config_candidates"])
    for i in valid:
        payload = row["config_candidates"][i]
        results = await asyncio.gather(*(s.ascore(vibe, payload) for s in scorers))
        candidate_scores[i] = {s.name: r for s, r in zip(scorers, results, strict=True)}
    out = row | {"candidate_scores": candidate_scores, "scorers": [s.name for s in scorers]}
    if valid:
        primary = scorers[0].name
        best = max(valid, key=lambda i: (candidate_scores[i][primary]["final_score"], -i))
        out |= {
            "best_index": best,
            "config_payload": row["config_candidates"][best],
            "score": {name: r["final_score"] for name, r in candidate_scores[best].items()},
        }
    else:
        out["score"] = None
    return out


class ScoreStep(SplitFilesStep):
    """Scores every valid candidate of each split file and re-selects the best; no LLM client of its
    own (the llm_judge scorer opens one)."""

    name = "score"
    made_by = "assay synth configs"
    not_shipped = ("scorers",)  # a Ray actor builds its own (`start`)

    def __init__(self, input_dir: Path, out_dir: Path, config: ScoreConfig, llm, runner):
        super().__init__(input_dir, out_dir, config.splits, runner)
        self.config, self.llm_settings = config, llm
        self.scorers: list[Scorer] = []

    def settings(self) -> dict[str, Any]:
        llm = self.llm_settings.public_dict() if self.llm_settings is not None else None
        return {"score": self.config.model_dump(mode="json"), "llm": llm}

    def setup(self) -> None:
        super().setup()
        self.scorers = build_scorers(self.config, self.llm_settings)

    def start(self) -> None:
        if not self.scorers:  # a Ray actor's copy of the step
            self.scorers = build_scorers(self.config, self.llm_settings)

    def clients(self) -> list[Any]:
        return [s.client for s in self.scorers if getattr(s, "client", None) is not None]

    async def process(self, row: dict[str, Any]) -> dict[str, Any]:
        return await score_row(row, self.scorers, self.config.vibe_field)

    async def close(self) -> None:
        for scorer in self.scorers:
            await scorer.aclose()

    def finish(self, stats) -> dict[str, Any]:
        splits = {
            name: list(read_jsonl(path))
            for name in self.config.splits
            if (path := self.out_dir / f"{name}.jsonl").exists()
        }
        out = {"splits": self.split_stats(stats), "means": score_means(splits)}
        if "audio" in self.config.scorers:  # from the descriptions the scorer stored: no rendering
            from assay.synth.quality import audio_auroc

            rows = [row for split_rows in splits.values() for row in split_rows]
            out["audio_scorer_auroc"] = audio_auroc(rows, self.config.vibe_field, self.config.audio_duration)
        return out


def score_configs(
    input_dir: Path, out_dir: Path, config: ScoreConfig, llm_settings: Any, runner_settings: Any
) -> dict[str, Any]:
    return run_step(ScoreStep(input_dir, out_dir, config, llm_settings, runner_settings))


def score_means(splits: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per split (name -> its scored rows) and scorer: the mean final_score of the selected configs."""
    means: dict[str, dict[str, float]] = {}
    for name, rows in splits.items():
        sums: dict[str, list[float]] = {}
        for row in rows:
            for scorer, value in (row.get("score") or {}).items():
                sums.setdefault(scorer, []).append(value)
        means[name] = {k: math.fsum(v) / len(v) for k, v in sums.items()} | {
            "rows_scored": max(map(len, sums.values()), default=0)
        }
    return means
