"""Turning logits into token draws: temperature, nucleus (top-p), banned (special) ids."""

from __future__ import annotations

import torch


def probabilities(logits: torch.Tensor, temperature: float, top_p: float, banned: list[int]) -> torch.Tensor:
    """(N, V) logits -> (N, V) sampling distribution. temperature 0 means greedy (one-hot argmax)."""
    logits = logits.float().clone()
    if banned:
        logits[:, banned] = float("-inf")  # never sample [MASK], [PAD], [CLS], [UNK]
    if temperature <= 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.size(-1)).float()
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass strictly above each token
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)  # the first token always stays
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def draw(probs: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw per row of (N, V) probs: ids (N,) and their probabilities (N,)."""
    ids = torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(1).to(probs.device)
    return ids, probs.gather(1, ids[:, None]).squeeze(1)
