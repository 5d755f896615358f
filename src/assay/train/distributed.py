"""torchrun/DDP support: who am I, and the few collectives the trainer needs (which device: assay.devices).

Under `torchrun --nproc_per_node=N -m assay train ...` the environment carries RANK and
WORLD_SIZE; the process group is gloo on CPU and nccl on CUDA. Outside torchrun everything is
a no-op with rank 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from assay.devices import resolve_device

__all__ = ["Dist", "resolve_device"]  # resolve_device: imported from here by older callers


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device_type: str) -> Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not tdist.is_initialized():
            tdist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        return cls(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def sum(self, *values: float) -> list[float]:
        """Sum floats over ranks (one all-reduce)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        tdist.all_reduce(t)
        return t.tolist()

    def broadcast_text(self, text: str | None) -> str:
        """Rank 0's `text`, on every rank."""
        if not self.enabled:
            return text
        box = [text]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool) -> bool:
        return self.sum(float(flag))[0] > 0

    def close(self) -> None:
        """Destroy the process group (collectively: every rank calls it once, at a clean exit)."""
        if self.enabled and tdist.is_initialized():
            tdist.barrier()
            tdist.destroy_process_group()
