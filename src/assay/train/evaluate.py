"""`assay eval`: a checkpoint's validation metrics, on its own data and tokenizer."""

from __future__ import annotations

import time
from typing import Any

from assay.data.tokens import prepare_tokens
from assay.train.checkpoint import Checkpoint
from assay.train.distributed import Dist
from assay.train.tasks import make_task


def evaluate_checkpoint(
    ckpt: Checkpoint, blocks: int | None = None, elbo_points: int | None = None, device: str = "cpu"
) -> dict[str, Any]:
    """Validation loss and bits per character (for a diffusion LM: the ELBO) over `blocks`
    fixed validation blocks (None: the whole validation split)."""
    cfg = ckpt.config.model_copy(deep=True)
    cfg.run.out_dir = str(ckpt.directory.parent)  # where a judge's calibration.png goes
    cfg.data.stream_timeout = 5.0  # a judge's stream must already be there: fail fast if not
    cfg.train.eval_blocks = blocks
    if elbo_points is not None:
        cfg.train.elbo_points = elbo_points
    splits = None if cfg.data.stream else prepare_tokens(cfg.data, ckpt.tokenizer)
    model = ckpt.build_model(device)
    task = make_task(cfg, splits, Dist(), device, ckpt.tokenizer)
    if hasattr(task, "curriculum"):
        task.load_state_dict(ckpt.state["task"])  # report the stage the run had reached
    started = time.perf_counter()
    metrics = task.evaluate(model, final=True)
    return {
        "checkpoint": str(ckpt.directory),
        "iter": ckpt.state.get("iter"),
        "objective": cfg.objective,
        "val_samples": len(task.val["idx"]) if cfg.data.stream else len(task.val_starts),
        **metrics,
        "seconds": round(time.perf_counter() - started, 2),
    }
