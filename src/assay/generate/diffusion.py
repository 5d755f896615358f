"""Diffusion sampling for a masked LM: start from [MASK]s, unmask over `steps` iterations.

Four samplers (`sampler=`):

    confidence  each step samples every masked position, then re-masks the least confident of the
                new tokens so that the number still masked follows a linear schedule from all of
                them down to none (the low-confidence remasking of MaskGIT / LLaDA)
    random      the same schedule, re-masking a uniformly random subset instead
    ancestral   MDLM's ancestral sampler (Sahoo et al., 2024) for the linear schedule
                alpha_t = 1 - t on the grid t_k = 1 - k/steps: from t to s each masked position is
                revealed with probability (t - s)/t, its token drawn from p(x | z_t); a revealed
                token is final (the SUBS "carry over")
    remdm       ReMDM (Wang et al., 2025), its max-capped schedule: as ancestral, but a token the
                sampler revealed earlier is masked again with probability
                sigma_t = min(eta, (1 - alpha_s)/alpha_t), and a masked one is revealed with
                probability (alpha_s - (1 - sigma_t) alpha_t)/(1 - alpha_t), so later steps can
                correct early mistakes. Positions given unmasked are never re-masked.

`temperature` and `top_p` shape every draw; special tokens ([MASK] included) are never drawn. The
model does not see t, so when a step changes nothing in a row (ancestral and remdm often reveal
nothing in a step) the row's logits of the previous step are reused instead of recomputed.
Texts longer than the model's block are made window by window, each window keeping the last half
block of the text so far as its context.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from assay.masking.strategies import MaskVocab
from assay.sampling import draw, probabilities

SAMPLERS = ("confidence", "random", "ancestral", "remdm")


class _CachedLogits:
    """The model's logits for x (B, T), recomputed only for the rows that changed since last time."""

    def __init__(self, model):
        self.model, self.x, self.logits, self.calls, self.rows = model, None, None, 0, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        fresh_start = self.x is None or self.x.shape != x.shape
        changed = torch.ones(len(x), dtype=torch.bool, device=x.device) if fresh_start else (x != self.x).any(1)
        if changed.any():
            fresh, _ = self.model(x[changed])  # (b, T, V)
            if fresh_start:
                self.logits = fresh.float()
            else:
                self.logits[changed] = fresh.float()
            self.calls += 1
            self.rows += int(changed.sum())
        self.x = x.clone()
        return self.logits


@torch.no_grad()
def unmask(
    model,
    x: torch.Tensor,
    vocab: MaskVocab,
    steps: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    gen: torch.Generator | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    sampler: str = "confidence",
    eta: float = 0.02,
) -> torch.Tensor:
    """Fill the [MASK] positions of x (B, T) in `steps` steps; other positions stay as given.
    eta: remdm's cap on the re-masking probability."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], not {eta}")
    gen = gen or torch.Generator().manual_seed(0)
    banned = list(vocab.special_ids)
    x = x.clone()
    logits_of = _CachedLogits(model)
    if sampler in ("ancestral", "remdm"):
        return _ancestral(
            logits_of, x, vocab, steps, temperature, top_p, gen, on_step, banned, eta if sampler == "remdm" else 0.0
        )
    n0 = (x == vocab.mask_id).sum(1)  # (B,)
    for s in range(steps):
        masked = x == vocab.mask_id  # (B, T)
        if not masked.any():
            break
        logits = logits_of(x)  # (B, T, V)
        ids, conf = draw(probabilities(logits[masked], temperature, top_p, banned), gen)
        proposal = x.clone()
        proposal[masked] = ids
        confidence = torch.full(x.shape, float("inf"), device=x.device)
        confidence[masked] = conf if sampler == "confidence" else torch.rand(conf.shape, generator=gen).to(x.device)
        still = n0 * (steps - s - 1) // steps  # (B,) to stay masked after this step (exact integers)
        rank = confidence.argsort(dim=1).argsort(dim=1)  # 0 = least confident
        x = proposal.masked_fill(masked & (rank < still[:, None]), vocab.mask_id)
        if on_step is not None:
            on_step(s, x)
    return x


def _ancestral(logits_of, x, vocab, steps, temperature, top_p, gen, on_step, banned, eta) -> torch.Tensor:
    """MDLM ancestral sampling (eta = 0) or ReMDM with the max-capped schedule (eta > 0)."""
    free = x == vocab.mask_id  # positions the sampler writes (and remdm may re-mask)
    for k in range(steps):
        t, s = 1.0 - k / steps, 1.0 - (k + 1) / steps  # alpha_t = 1 - t
        masked = x == vocab.mask_id
        sigma = min(eta, s / (1.0 - t)) if t < 1.0 else 0.0
        reveal = 1.0 if s == 0.0 else ((1.0 - s) - (1.0 - sigma) * (1.0 - t)) / t
        u = torch.rand(x.shape, generator=gen).to(x.device)
        to_reveal = masked & (u < reveal)
        to_remask = free & ~masked & (u < sigma) if sigma > 0 else None
        if to_reveal.any():
            logits = logits_of(x)
            ids, _ = draw(probabilities(logits[to_reveal], temperature, top_p, banned), gen)
            x = x.clone()
            x[to_reveal] = ids
        if to_remask is not None and to_remask.any():
            x = x.masked_fill(to_remask, vocab.mask_id)
        if on_step is not None:
            on_step(k, x)
    return x


def window_sizes(prompt_len: int, length: int, block_size: int) -> list[int]:
    """New tokens made by each window of a generation: every window after the first (or after a
    prompt) keeps the last half block of the text so far as its context."""
    sizes, have = [], prompt_len
    while sum(sizes) < length:
        context = min(have, block_size // 2)
        sizes.append(min(block_size - context, length - sum(sizes)))
        have += sizes[-1]
    return sizes


def _reporter(on_step, window: int, done: list[int], context: int):
    """unmask's on_step(step, x) for one window -> on_step(window, step, new ids so far)."""
    return lambda step, x: on_step(window, step, done + x[0, context:].tolist())


@torch.no_grad()
def generate_diffusion(
    model,
    vocab: MaskVocab,
    length: int,
    steps: int,
    block_size: int,
    prompt: list[int] | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    gen: torch.Generator | None = None,
    device="cpu",
    on_step: Callable[[int, int, list[int]], None] | None = None,
    sampler: str = "confidence",
    eta: float = 0.02,
) -> list[int]:
    """`length` new token ids after `prompt`.

    on_step(window, step, ids) is called after every denoising step with the new ids so far
    (earlier windows, then the current one with [MASK] ids where it is still masked)."""
    seq = list(prompt or [])
    start = len(seq)
    for window, n_new in enumerate(window_sizes(len(seq), length, block_size)):
        context = seq[-(block_size // 2) :] if seq else []
        x = torch.tensor([context + [vocab.mask_id] * n_new], device=device)
        report = _reporter(on_step, window, seq[start:], len(context)) if on_step else None
        x = unmask(model, x, vocab, steps, temperature, top_p, gen, report, sampler, eta)
        seq.extend(x[0, len(context) :].tolist())
    return seq[start:]
