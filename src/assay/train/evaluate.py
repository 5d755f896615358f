"""`assay eval`: a checkpoint's validation metrics, on its own data and tokenizer."""

from __future__ import annotations

import time
from typing import Any

from assay.data.tokens import prepare_tokens
from assay.train.checkpoint import Checkpoint
from assay.train.distributed import Dist


def evaluate_checkpoint(
    ckpt: Checkpoint, blocks: int | None = None, elbo_points: int | None = None, device: str = "cpu"
) -> dict[str, Any]:
    """Validation loss and bits per character (for a diffusion LM: the ELBO) over `blocks`
    fixed validation blocks (None: the whole validation split), by the checkpoint's own task."""
    cfg = ckpt.config.model_copy(deep=True)
    cfg.run.out_dir = str(ckpt.directory.parent)  # where a judge's calibration.png goes
    cfg.data.stream_timeout = 5.0  # a judge's stream must already be there: fail fast if not
    cfg.train.eval_blocks = blocks
    if elbo_points is not None:
        cfg.train.elbo_points = elbo_points
    splits = None if cfg.data.stream else prepare_tokens(cfg.data, ckpt.tokenizer)
    model = ckpt.build_model(device)
    task = ckpt.task.create(cfg, Dist(), device, ckpt.tokenizer, splits)
    task.load_eval_state(ckpt.state["task"])
    started = time.perf_counter()
    metrics = task.evaluate(model, final=True)
    return {
        "checkpoint": str(ckpt.directory),
        "iter": ckpt.state.get("iter"),
        "objective": cfg.objective,
        "val_samples": task.val_size,
        **metrics,
        "seconds": round(time.perf_counter() - started, 2),
    }
