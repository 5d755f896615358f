"""The stage curriculum: which masking stage trains now, and when to move on."""

from __future__ import annotations

import math

from assay.masking.config import Stage


class Curriculum:
    def __init__(self, stages: list[Stage], patience: int, min_delta: float = 0.0):
        self.stages, self.patience, self.min_delta = list(stages), patience, min_delta
        self.index, self.best, self.stale = 0, math.inf, 0

    @property
    def stage(self) -> Stage:
        return self.stages[self.index]

    def observe(self, val_loss: float) -> bool:
        """Record the current stage's validation loss; returns True when the stage advanced.

        Only a drop of more than `min_delta` below the stage's best counts as an improvement.
        """
        if val_loss < self.best - self.min_delta:
            self.best, self.stale = val_loss, 0
            return False
        self.stale += 1
        if self.stale >= self.patience and self.index < len(self.stages) - 1:
            self.index, self.best, self.stale = self.index + 1, math.inf, 0
            return True
        return False

    def state_dict(self) -> dict:
        return {"index": self.index, "best": None if math.isinf(self.best) else self.best, "stale": self.stale}

    def load_state_dict(self, state: dict) -> None:
        self.index = int(state["index"])
        self.best = math.inf if state["best"] is None else float(state["best"])
        self.stale = int(state["stale"])
