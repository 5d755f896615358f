"""Diffusion sampling for a masked LM: start from [MASK]s, unmask over `steps` iterations.

Each step samples every masked position, then re-masks the least confident of the new tokens
so that the number still masked follows a linear schedule from all of them down to none (the
low-confidence remasking of MaskGIT / LLaDA). `order="random"` re-masks a uniformly random
subset instead (the ancestral order of MDLM): more diverse, less word-like from a weak model.
Texts longer than the model's block are made window by window, each window keeping the last
half block of the text so far as its context.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from assay.masking.strategies import MaskVocab
from assay.sampling import draw, probabilities


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
    order: str = "confidence",
) -> torch.Tensor:
    """Fill the [MASK] positions of x (B, T) in `steps` steps; other positions stay as given."""
    if order not in ("confidence", "random"):
        raise ValueError(f"order must be 'confidence' or 'random', not {order!r}")
    gen = gen or torch.Generator().manual_seed(0)
    banned = list(vocab.special_ids)
    x = x.clone()
    n0 = (x == vocab.mask_id).sum(1)  # (B,)
    for s in range(steps):
        masked = x == vocab.mask_id  # (B, T)
        if not masked.any():
            break
        logits, _ = model(x)  # (B, T, V)
        ids, conf = draw(probabilities(logits[masked], temperature, top_p, banned), gen)
        proposal = x.clone()
        proposal[masked] = ids
        confidence = torch.full(x.shape, float("inf"), device=x.device)
        confidence[masked] = conf if order == "confidence" else torch.rand(conf.shape, generator=gen).to(x.device)
        still = n0 * (steps - s - 1) // steps  # (B,) to stay masked after this step (exact integers)
        rank = confidence.argsort(dim=1).argsort(dim=1)  # 0 = least confident
        x = proposal.masked_fill(masked & (rank < still[:, None]), vocab.mask_id)
        if on_step is not None:
            on_step(s, x)
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
    order: str = "confidence",
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
        x = unmask(model, x, vocab, steps, temperature, top_p, gen, report, order)
        seq.extend(x[0, len(context) :].tolist())
    return seq[start:]
