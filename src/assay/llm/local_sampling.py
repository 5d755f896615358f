"""Picking one index from a score vector: greedy at temperature 0, else softmax sampling with top-p."""

from __future__ import annotations

import torch


def pick(
    scores: torch.Tensor, temperature: float, top_p: float | None = None, generator: torch.Generator | None = None
) -> int:
    """An index into `scores` ([n] logits or log-probs; -inf entries are never chosen).

    temperature <= 0 is greedy (the first maximum); otherwise sample from softmax(scores / T),
    keeping the smallest set of top entries whose probability reaches `top_p` (None or 1 = all).
    """
    scores = scores.float()
    if temperature <= 0:
        return int(torch.argmax(scores))
    probs = torch.softmax(scores / temperature, dim=-1)
    if top_p is not None and 0 < top_p < 1:
        ordered, order = torch.sort(probs, descending=True)
        # keep entries whose preceding mass is below top_p: the top one always survives
        keep = (torch.cumsum(ordered, dim=-1) - ordered) < top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
    return int(torch.multinomial(probs, 1, generator=generator))
