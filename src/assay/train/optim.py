"""AdamW with decay/no-decay groups and a warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch

from assay.train.config import TrainConfig


def _groups(params, cfg: TrainConfig) -> list[dict]:
    """Matrices (weights, embeddings) decay; vectors (norms, biases) do not."""
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only: frozen ones get no state and no updates."""
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() yields tied ones once
    return torch.optim.AdamW(_groups(params, cfg), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), foreach=True)


def add_trainable(optimizer: torch.optim.Optimizer, model: torch.nn.Module, cfg: TrainConfig) -> int:
    """After unfreezing: give the optimizer the trainable parameters it does not have yet
    (as two more groups); returns how many parameters were added."""
    known = {id(p) for group in optimizer.param_groups for p in group["params"]}
    new = [p for p in model.parameters() if p.requires_grad and id(p) not in known]
    for group in _groups(new, cfg):
        if group["params"]:
            optimizer.add_param_group(group)
    return sum(p.numel() for p in new)


def warmup_cosine(step: int, lr: float, min_lr: float, warmup: int, end: int) -> float:
    """Linear warmup for `warmup` steps, cosine decay from `lr` to `min_lr` at step `end`, then flat."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= end:
        return min_lr
    progress = (step - warmup) / max(1, end - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The trainer's schedule: warmup for `warmup_iters`, cosine to `min_lr` at `lr_decay_iters`."""
    return warmup_cosine(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters or cfg.max_iters)
