"""Turning scores into draws, one definition for every sampler of assay (the masked-diffusion and
autoregressive generators, the local LLM): temperature, nucleus (top-p), banned ids, greedy at 0."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def probabilities(
    logits: torch.Tensor, temperature: float, top_p: float | None = 1.0, banned: Sequence[int] = ()
) -> torch.Tensor:
    """(N, V) logits -> (N, V) sampling distribution.

    temperature <= 0 is greedy (one-hot on the first maximum). top_p keeps, per row, the smallest
    set of top tokens whose mass reaches top_p (the top token always stays); None or 1 keeps all.
    `banned` ids (e.g. [MASK], [PAD]) and -inf entries are never drawn.
    """
    logits = logits.float().clone()
    if banned:
        logits[:, list(banned)] = float("-inf")
    if temperature <= 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.size(-1)).float()
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass strictly above each token
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def draw(probs: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw per row of (N, V) probs: ids (N,) and their probabilities (N,)."""
    ids = torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(1).to(probs.device)
    return ids, probs.gather(1, ids[:, None]).squeeze(1)


def pick(
    scores: torch.Tensor, temperature: float, top_p: float | None = None, generator: torch.Generator | None = None
) -> int:
    """One index into a [V] score vector (logits or log-probs): greedy at temperature <= 0 (no
    randomness used), else a draw from `probabilities`."""
    if temperature <= 0:
        return int(torch.argmax(scores.float()))
    return int(draw(probabilities(scores[None], temperature, top_p), generator)[0][0])


def penalize(
    scores: torch.Tensor,
    history: Sequence[int],
    repetition_penalty: float = 1.0,
    no_repeat_ngram: int = 0,
    candidates: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scores of the next token with the two usual guards against loops (as in HF transformers):

    - `repetition_penalty` p > 1 (CTRL, Keskar et al. 2019): the score s of every token already in
      `history` becomes s / p if s > 0, else s * p;
    - `no_repeat_ngram` n > 0: a token that would complete an n-gram already in `history` gets -inf,
      unless that would leave no token at all.

    `scores` is over the whole vocabulary, or over the token ids `candidates` (guided decoding's
    allowed tokens). Returns new scores; greedy or sampled picking follows as usual."""
    if not history or (repetition_penalty == 1.0 and no_repeat_ngram <= 0):
        return scores
    ids = candidates if candidates is not None else torch.arange(scores.shape[-1])
    out = scores.float().clone()
    if repetition_penalty != 1.0:
        seen = torch.isin(ids, torch.tensor(sorted(set(history)), dtype=ids.dtype))
        out[seen] = torch.where(out[seen] > 0, out[seen] / repetition_penalty, out[seen] * repetition_penalty)
    n = no_repeat_ngram
    if n > 0 and len(history) >= n:
        prefix = tuple(history[len(history) - n + 1 :]) if n > 1 else ()
        banned = {history[i + n - 1] for i in range(len(history) - n + 1) if tuple(history[i : i + n - 1]) == prefix}
        if banned:
            hit = torch.isin(ids, torch.tensor(sorted(banned), dtype=ids.dtype))
            if not bool(hit.all()):
                out[hit] = float("-inf")
    return out
