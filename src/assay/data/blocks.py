"""Fixed-length blocks of a token stream: a resumable, rank-sharded training order and a fixed
validation set.

Training order: each epoch cuts the stream into non-overlapping blocks at a random offset and
shuffles them (both from a stable hash of (seed, epoch)). All ranks compute the same order; step
s of rank r takes blocks [s*B*W + r*B, s*B*W + (r+1)*B) of the concatenated epochs. The whole
state is two integers, so resuming reproduces the data order exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from assay.errors import DataError
from assay.rng import generator


class BlockSampler:
    def __init__(self, n_tokens: int, block_len: int, seed: int, rank: int = 0, world_size: int = 1):
        if n_tokens < 2 * block_len:
            raise DataError(f"training split has {n_tokens} tokens: too few for blocks of {block_len}")
        self.n_tokens, self.block_len, self.seed = n_tokens, block_len, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.cursor = 0, 0  # cursor: blocks of this epoch already handed out (all ranks)
        self._order: np.ndarray | None = None

    def _epoch_order(self) -> np.ndarray:
        if self._order is None:
            g = generator(self.seed, "blocks", self.epoch)
            offset = int(torch.randint(self.block_len, (1,), generator=g))
            n_blocks = (self.n_tokens - offset) // self.block_len
            perm = torch.randperm(n_blocks, generator=g).numpy()
            self._order = offset + perm.astype(np.int64) * self.block_len
        return self._order

    def next_starts(self, batch_size: int) -> np.ndarray:
        """Start offsets of this rank's next `batch_size` blocks."""
        taken: list[np.ndarray] = []
        need = batch_size * self.world_size
        while need:
            order = self._epoch_order()
            got = order[self.cursor : self.cursor + need]
            taken.append(got)
            self.cursor += len(got)
            need -= len(got)
            if self.cursor >= len(order):
                self.epoch, self.cursor, self._order = self.epoch + 1, 0, None
        starts = np.concatenate(taken)
        return starts[self.rank * batch_size : (self.rank + 1) * batch_size]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor, self._order = int(state["epoch"]), int(state["cursor"]), None


def gather_blocks(tokens: np.ndarray, starts: np.ndarray, block_len: int) -> torch.Tensor:
    """(len(starts), block_len) int64 tensor of the blocks beginning at `starts`."""
    index = starts[:, None] + np.arange(block_len)[None, :]
    return torch.from_numpy(tokens[index].astype(np.int64))


def fixed_blocks(n_tokens: int, block_len: int, max_blocks: int | None = None) -> np.ndarray:
    """Starts of non-overlapping blocks covering the split; an evenly spaced subset if capped."""
    starts = np.arange(0, n_tokens - block_len + 1, block_len, dtype=np.int64)
    if len(starts) == 0:
        raise DataError(f"validation split has {n_tokens} tokens: too few for one block of {block_len}")
    if max_blocks is not None and len(starts) > max_blocks:
        starts = starts[np.linspace(0, len(starts) - 1, max_blocks).round().astype(np.int64)]
    return starts
