"""Stable seeds: the same (seed, purpose, index) gives the same stream in every process.

Python's `hash()` is salted per process, so it must never seed anything; sha256 is used instead.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _digest(parts: tuple[object, ...]) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, identical across processes and machines."""
    return int.from_bytes(_digest(parts)[:8], "little") & ((1 << 63) - 1)


def stable_rng(*parts: object) -> random.Random:
    """A `random.Random` seeded from the parts (for data pipelines that need no torch)."""
    return random.Random(int.from_bytes(_digest(parts)[:8], "big"))


def generator(*parts: object) -> torch.Generator:
    """A CPU torch.Generator seeded with `stable_seed(*parts)`."""
    import torch

    return torch.Generator().manual_seed(stable_seed(*parts))
