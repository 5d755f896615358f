"""Stable seeds: the same (seed, purpose, index) gives the same stream in every process.

Python's `hash()` is salted per process, so it must never seed anything; sha256 is used instead.
"""

from __future__ import annotations

import hashlib

import torch


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, identical across processes and machines."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(*parts: object) -> torch.Generator:
    """A CPU torch.Generator seeded with `stable_seed(*parts)`."""
    return torch.Generator().manual_seed(stable_seed(*parts))
