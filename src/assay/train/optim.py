"""AdamW with decay/no-decay groups and a warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch

from assay.train.config import TrainConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """Matrices (weights, embeddings) decay; vectors (norms, biases) do not. Frozen parameters
    are left out entirely, so the optimizer never holds state for them."""
    seen: set[int] = set()
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=False, foreach=True)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup for `warmup_iters`, cosine decay to `min_lr` at `lr_decay_iters`, then flat."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    end = cfg.lr_decay_iters or cfg.max_iters
    if step >= end:
        return cfg.min_lr
    progress = (step - cfg.warmup_iters) / max(1, end - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)
