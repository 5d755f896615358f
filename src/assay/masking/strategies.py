"""Masking strategies as pure functions of (tokens, vocab, generator, parameters).

Each returns a `Masked`: the corrupted inputs, the labels (the original token where masked,
-100 elsewhere), the boolean mask and the per-sample rate that was asked for. Special tokens
([CLS], [PAD], ...) are never masked; rates are fractions of the maskable tokens of each sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from assay.model.transformer import IGNORE_INDEX


@dataclass(frozen=True)
class MaskVocab:
    """What masking needs to know of a tokenizer."""

    size: int
    mask_id: int
    special_ids: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer) -> MaskVocab:
        return cls(tokenizer.vocab_size, tokenizer.mask_id, tuple(tokenizer.special_ids))

    def maskable(self, tokens: torch.Tensor) -> torch.Tensor:
        return ~torch.isin(tokens, torch.tensor(self.special_ids, dtype=tokens.dtype))

    def random_tokens(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        """Uniform draws from the non-special ids."""
        allowed = torch.ones(self.size, dtype=torch.bool)
        allowed[list(self.special_ids)] = False
        pool = allowed.nonzero().squeeze(1)
        return pool[torch.randint(len(pool), shape, generator=gen)]


@dataclass
class Masked:
    inputs: torch.Tensor  # (B, T) int64
    labels: torch.Tensor  # (B, T) int64, -100 where not masked
    mask: torch.Tensor  # (B, T) bool
    rates: torch.Tensor  # (B,) float, the intended rate of each sample


def sample_rates(rate, batch: int, gen: torch.Generator, stratified: bool = False) -> torch.Tensor:
    """(B,) rates: the fixed rate, or uniform draws from a (low, high) range (stratified: one
    uniform offset u, then (u + i/B) mod 1, shuffled)."""
    if isinstance(rate, int | float):
        return torch.full((batch,), float(rate))
    lo, hi = rate
    if stratified:
        u = (torch.rand(1, generator=gen) + torch.arange(batch) / batch) % 1.0
        u = u[torch.randperm(batch, generator=gen)]
    else:
        u = torch.rand(batch, generator=gen)
    return lo + (hi - lo) * u


def _finish(tokens, vocab, mask, rates, inputs=None) -> Masked:
    if inputs is None:
        inputs = tokens.masked_fill(mask, vocab.mask_id)
    return Masked(inputs, tokens.masked_fill(~mask, IGNORE_INDEX), mask, rates)


def _exact_start(tokens, vocab: MaskVocab, gen, rate):
    """For exact-count strategies: rates (B,), maskable (B, T), the target K = ceil(rate * T) per
    sample (T = its maskable tokens), and an empty mask."""
    rates = sample_rates(rate, tokens.size(0), gen)
    maskable = vocab.maskable(tokens)
    n = maskable.sum(1)
    target = torch.minimum(torch.ceil(rates * n - 1e-6).long(), n)
    return rates, maskable, target, torch.zeros(tokens.shape, dtype=torch.bool)


def mask_random(tokens, vocab: MaskVocab, gen, rate=(0.0, 1.0), stratified=False) -> Masked:
    rates = sample_rates(rate, tokens.size(0), gen, stratified)
    mask = (torch.rand(tokens.shape, generator=gen) < rates[:, None]) & vocab.maskable(tokens)
    return _finish(tokens, vocab, mask, rates)


def mask_bert(tokens, vocab: MaskVocab, gen, rate=0.15, mask_frac=0.8, random_frac=0.1) -> Masked:
    rates = sample_rates(rate, tokens.size(0), gen)
    mask = (torch.rand(tokens.shape, generator=gen) < rates[:, None]) & vocab.maskable(tokens)
    u = torch.rand(tokens.shape, generator=gen)
    to_mask = mask & (u < mask_frac)
    to_random = mask & (u >= mask_frac) & (u < mask_frac + random_frac)
    inputs = tokens.masked_fill(to_mask, vocab.mask_id)
    inputs = torch.where(to_random, vocab.random_tokens(tokens.shape, gen), inputs)
    return _finish(tokens, vocab, mask, rates, inputs)


def mask_sticky(tokens, vocab: MaskVocab, gen, rate=0.4, p1=0.15, p2=0.5, max_rounds=10_000) -> Masked:
    """Grow masks in rounds: an unmasked token is masked with p2 if a neighbour is, else p1.

    Each round adds at most what a sample still needs (a uniform subset of the candidates), so
    every sample ends with exactly K masked tokens. When the rule cannot reach K (p2 = 0 leaves
    no maskable token without a masked neighbour), the rest is placed uniformly at random.
    """
    B, T = tokens.shape
    rates, maskable, target, mask = _exact_start(tokens, vocab, gen, rate)
    for _ in range(max_rounds):
        need = target - mask.sum(1)  # (B,)
        if not bool((need > 0).any()):
            break
        neighbour = F.pad(mask[:, 1:], (0, 1)) | F.pad(mask[:, :-1], (1, 0))  # (B, T)
        p = torch.where(neighbour, p2, p1)
        open_ = maskable & ~mask & (need > 0)[:, None]
        stuck = open_.any(1) & ~(open_ & (p > 0)).any(1)  # (B,) rows the rule can no longer grow
        cand = open_ & ((torch.rand(B, T, generator=gen) < p) | stuck[:, None])
        mask |= cand & (_random_rank(cand, gen) < need[:, None])
    return _finish(tokens, vocab, mask, rates)


def _random_rank(selected: torch.Tensor, gen) -> torch.Tensor:
    """Per row, a uniformly random rank 0..k-1 for the k selected positions (others rank >= k)."""
    keys = torch.rand(selected.shape, generator=gen).masked_fill(~selected, 2.0)
    return keys.argsort(dim=1).argsort(dim=1)


def mask_span(tokens, vocab: MaskVocab, gen, rate=0.3, n_spans=4) -> Masked:
    """K = ceil(rate * T) tokens as (up to) n_spans non-overlapping spans with gaps between them.

    Span lengths are a uniform random composition of K; the unmasked tokens are spread over the
    n_spans + 1 gaps (inner gaps at least one token) uniformly as well.
    """
    rates, maskable, target, mask = _exact_start(tokens, vocab, gen, rate)
    for b in range(len(tokens)):
        positions = maskable[b].nonzero().squeeze(1)
        m, k = len(positions), int(target[b])
        if k == 0:
            continue
        s = max(1, min(n_spans, k, m - k + 1))
        lengths = _composition(k, s, gen)
        free = m - k - (s - 1)  # unmasked tokens beyond the one each inner gap needs
        gaps = _composition(free + s + 1, s + 1, gen) - 1  # s + 1 gaps >= 0 summing to `free`
        gaps[1:-1] += 1
        cursor = int(gaps[0])
        for j in range(s):
            mask[b, positions[cursor : cursor + int(lengths[j])]] = True
            cursor += int(lengths[j]) + int(gaps[j + 1])
    return _finish(tokens, vocab, mask, rates)


def _composition(total: int, parts: int, gen) -> torch.Tensor:
    """A uniformly random composition of `total` into `parts` positive integers."""
    if parts == 1:
        return torch.tensor([total])
    cuts = torch.randperm(total - 1, generator=gen)[: parts - 1].sort().values + 1
    edges = torch.cat([torch.tensor([0]), cuts, torch.tensor([total])])
    return edges.diff()


STRATEGIES = {"bert": mask_bert, "random": mask_random, "sticky": mask_sticky, "span": mask_span}


def apply_stage(stage, tokens: torch.Tensor, vocab: MaskVocab, gen: torch.Generator) -> Masked:
    """Mask `tokens` (B, T) with the strategy and parameters of a stage config."""
    params = stage.model_dump(exclude={"kind"})
    return STRATEGIES[stage.kind](tokens, vocab, gen, **params)


def expected_rate(stage) -> float:
    """Mean fraction of maskable tokens a stage masks (for reports)."""
    rate = stage.rate
    return float(rate) if isinstance(rate, int | float) else (rate[0] + rate[1]) / 2


__all__ = [
    "Masked",
    "STRATEGIES",
    "MaskVocab",
    "apply_stage",
    "expected_rate",
    "mask_bert",
    "mask_random",
    "mask_span",
    "mask_sticky",
]
