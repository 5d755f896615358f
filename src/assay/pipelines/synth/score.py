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
from assay.scorers.base import Scorer, ScorerError

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
            from assay.scorers.audio import AudioScorer

            scorers.append(AudioScorer(duration=config.audio_duration))
        elif name == "reward":
            from assay.scorers.reward import RewardScorer

            scorers.append(RewardScorer())
        elif name == "llm_judge":
            from assay.scorers.llm_judge import LLMJudgeScorer

            if llm_settings is None:
                raise ScorerError("the llm_judge scorer needs the LLM options (--model ...)")
            scorers.append(LLMJudgeScorer(llm_settings))
        elif name == "assay_judge":
            from assay.scorers.assay_judge import AssayJudgeScorer

            if config.judge_dir is None:
                raise ScorerError("the assay_judge scorer needs --judge-dir (a judge run made by `assay train`)")
            scorers.append(AssayJudgeScorer(config.judge_dir))
        elif ".py:" in name:
            from assay.scorers.custom import CustomScorer

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


def score_configs(
    input_dir: Path, out_dir: Path, config: ScoreConfig, llm_settings: Any, runner_settings: Any
) -> dict[str, Any]:
    import asyncio

    from assay.pipelines.runner import arun_rows, guard_outputs, read_jsonl, split_files, write_run_config

    files = split_files(input_dir, config.splits, "assay synth configs")
    out_dir = Path(out_dir)
    guard_outputs([out_dir / p.name for p in files], runner_settings)
    scorers = build_scorers(config, llm_settings)
    write_run_config(
        out_dir,
        "score",
        {
            "score": config.model_dump(mode="json"),
            "llm": llm_settings.public_dict() if llm_settings is not None else None,
            "runner": runner_settings.model_dump(),
        },
        {"input_dir": str(input_dir)},
    )

    async def main() -> dict[str, Any]:
        results = {}
        try:
            for path in files:
                rows = list(read_jsonl(path))
                stats = await arun_rows(
                    rows,
                    lambda row: score_row(row, scorers, config.vibe_field),
                    out_dir / path.name,
                    runner_settings,
                    f"score {path.stem}",
                )
                results[path.stem] = stats.to_dict()
        finally:
            for s in scorers:
                await s.aclose()
        return results

    runs = asyncio.run(main())
    return {"splits": runs, "means": score_means(out_dir, config.splits)}


def score_means(out_dir: Path, splits: list[str]) -> dict[str, dict[str, float]]:
    """Per split and scorer: the mean final_score of the selected configs."""
    from assay.pipelines.runner import read_jsonl

    means: dict[str, dict[str, float]] = {}
    for name in splits:
        path = Path(out_dir) / f"{name}.jsonl"
        if not path.exists():
            continue
        sums: dict[str, list[float]] = {}
        for row in read_jsonl(path):
            for scorer, value in (row.get("score") or {}).items():
                sums.setdefault(scorer, []).append(value)
        means[name] = {k: math.fsum(v) / len(v) for k, v in sums.items()} | {
            "rows_scored": max(map(len, sums.values()), default=0)
        }
    return means
