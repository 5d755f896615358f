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
    cfg.train.eval_blocks = blocks
    if elbo_points is not None:
        cfg.train.elbo_points = elbo_points
    splits = prepare_tokens(cfg.data, ckpt.tokenizer)
    model = ckpt.build_model(device)
    task = make_task(cfg, splits, Dist(), device)
    if hasattr(task, "curriculum"):
        task.load_state_dict(ckpt.state["task"])  # report the stage the run had reached
    started = time.perf_counter()
    metrics = task.evaluate(model, final=True)
    return {
        "checkpoint": str(ckpt.directory),
        "iter": ckpt.state.get("iter"),
        "objective": cfg.objective,
        "val_blocks": len(task.val_starts),
        "val_tokens": len(task.val_starts) * cfg.data.block_size,
        **metrics,
        "seconds": round(time.perf_counter() - started, 2),
    }
