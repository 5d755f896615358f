"""What `assay serve` loads (once, before it listens) and what `GET /api/models` says about it:
the runs by their folder names, never a path of the server's disk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from assay.devices import resolve_device
from assay.errors import AssayError, CheckpointError
from assay.judges import Judge
from assay.train.checkpoint import Checkpoint, ObjectiveError, load_checkpoint
from assay.train.lm_tasks import CORE_TASKS


@dataclass
class LanguageModel:
    ckpt: Checkpoint
    model: Any  # assay.model.Transformer, eval mode

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> LanguageModel:
        try:
            ckpt = load_checkpoint(path)  # the core's language models
        except ObjectiveError as exc:
            what = (
                f"not one of the language models `assay serve` loads ({', '.join(CORE_TASKS)})"
                if exc.mode == "language_model"
                else "not a language_model run"
            )
            raise CheckpointError(f"--lm {path} is a {exc.objective} run, {what}") from None
        return cls(ckpt, ckpt.build_model(resolve_device(device)))


@dataclass
class Loaded:
    judge: Judge
    lm: LanguageModel | None


def load_models(
    judge_path: str | Path | None, lm_path: str | Path | None, device: str | torch.device = "cpu"
) -> Loaded:
    """The judge and the LM (if any), both on `device` (checked first: a missing GPU fails fast)."""
    if judge_path is None:
        raise AssayError("say which judge to serve: --judge DIR (a judge run, or a folder of judge runs)")
    device = resolve_device(device)
    return Loaded(Judge.load(judge_path, device), LanguageModel.load(lm_path, device) if lm_path is not None else None)


def describe(ckpt: Checkpoint, model) -> dict[str, Any]:
    """Mode, shape, tokenizer and training metrics of one loaded checkpoint."""
    cfg = ckpt.config
    out: dict[str, Any] = {
        "mode": cfg.model.mode,
        "run": ckpt.directory.parent.name,  # names only: a path would tell clients about the server's disk
        "checkpoint": ckpt.directory.name,
        "attention": cfg.model.attention,
        "tokenizer": cfg.data.tokenizer,
        "vocab_size": ckpt.tokenizer.vocab_size,
        "n_layer": cfg.model.n_layer,
        "n_head": cfg.model.n_head,
        "n_embd": cfg.model.n_embd,
        "block_size": cfg.data.block_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "iter": ckpt.state.get("iter"),
    }
    if cfg.model.mode == "token_classifier":
        out["num_classes"] = cfg.model.num_classes
    if cfg.model.mode == "sequence_scorer":
        out["pooling"] = cfg.model.pooling
    out["metrics"] = _final_metrics(ckpt.directory.parent)
    return out


def _final_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The run's eval.json (final validation metrics), when the checkpoint sits in a run folder."""
    try:
        metrics = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    # plots and per-bin tables are for files, not for a status page
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str)} if isinstance(metrics, dict) else None


def models_info(loaded: Loaded) -> dict[str, Any]:
    judge = loaded.judge
    return {
        "judge": {
            "sources": [f"{Path(s).parent.name}/{Path(s).name}" for s in judge.sources],
            "sequence_scorer": describe(*judge.scorer) if judge.scorer else None,
            "token_classifier": describe(*judge.inspector) if judge.inspector else None,
            "token_probabilities": judge.inspector is not None,
        },
        "lm": describe(loaded.lm.ckpt, loaded.lm.model) if loaded.lm else None,
    }
