"""Scorers: things that put a number on a text. `Judge` wraps trained assay judges."""

from assay.scorers.judge import Judge

__all__ = ["Judge"]
