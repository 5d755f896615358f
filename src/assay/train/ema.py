"""An exponential moving average (EMA) of a model's weights, as MDLM and MD4 use for evaluation and
sampling: after every optimizer step, shadow <- d * shadow + (1 - d) * weights, with the decay
warmed up as d_k = min(decay, (1 + k) / (10 + k)) so early averages do not remember the random
initialisation.

With `train.ema_decay` set, the trainer evaluates with the EMA weights and a checkpoint's
`model.safetensors` holds them (so eval, generate, serve and init_from use them); the optimizer's
own weights go to `training.safetensors`, for an exact resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.params = list(model.parameters())  # tied weights once
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    def follow(self, model: torch.nn.Module, layout: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        """Track `model`'s parameters after they were replaced by new ones (FSDP shards them), the
        shadow laid out like them: `layout(shadow, new_param)`."""
        self.params = list(model.parameters())
        self.shadow = [layout(s, p) for s, p in zip(self.shadow, self.params, strict=True)]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @contextmanager
    def applied(self) -> Iterator[list[torch.Tensor]]:
        """The model holds the EMA weights inside the block, its own weights again after it. Yields
        the copy of its own weights (in `model.parameters()` order), e.g. to save them."""
        with torch.no_grad():
            own = [p.detach().clone() for p in self.params]
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield own
        finally:
            with torch.no_grad():
                for p, o in zip(self.params, own, strict=True):
                    p.copy_(o)
