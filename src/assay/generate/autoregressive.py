"""Autoregressive sampling for a causal LM, with a KV cache (`Transformer.decode`).

The prompt (its last block_size tokens) is prefilled once, then each step feeds only the token
just drawn. Positions stay within the trained block: when the cache is full (block_size positions)
and one more token must be fed, the last block_size // 2 tokens are prefilled again, as positions
0.., and decoding goes on from there. So while prompt + new tokens fit in block_size + 1, every
token is drawn from its whole past, as a full forward of the window would draw it; later a token
is drawn from the last block_size // 2 to block_size tokens (the uncached loop this replaced used
a window of the last block_size tokens for every one). One re-prefill of half a block per
block_size // 2 new tokens keeps the cost linear in the length.
"""

from __future__ import annotations

import torch

from assay.sampling import draw, probabilities


@torch.no_grad()
def sample_causal(
    model,
    special_ids: list[int],
    prompts: torch.Tensor,
    length: int,
    block_size: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, length) new token ids continuing each row of `prompts` (B, P), P >= 1, one batch.

    The rows are drawn in one batch, each from its own distribution; the draws of a row depend on
    the other rows only through the shared generator `gen`."""
    if prompts.dim() != 2 or prompts.size(1) == 0:
        raise ValueError("a causal model needs a non-empty prompt to start from")
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, not {block_size}")
    gen = gen or torch.Generator().manual_seed(0)
    context = prompts[:, -block_size:]  # (B, P'): the tokens the cache holds, then the one drawn
    new = torch.empty(len(prompts), length, dtype=torch.long, device=prompts.device)
    if not length:
        return new
    logits, cache = model.decode(context)  # prefill
    for i in range(length):
        new[:, i], _ = draw(probabilities(logits[:, -1], temperature, top_p, special_ids), gen)
        if i == length - 1:
            break
        context = torch.cat([context, new[:, i : i + 1]], dim=1)
        if context.size(1) <= block_size:
            logits, cache = model.decode(new[:, i : i + 1], cache)
        else:  # the cache is full: slide, the last half block again at positions 0..
            context = context[:, -(block_size // 2) :]
            logits, cache = model.decode(context)
    return new


@torch.no_grad()
def generate_causal(
    model,
    special_ids: list[int],
    prompt: list[int],
    length: int,
    block_size: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    gen: torch.Generator | None = None,
    device="cpu",
) -> list[int]:
    """`length` new token ids continuing `prompt` (which must not be empty)."""
    if not prompt:
        raise ValueError("a causal model needs a non-empty prompt to start from")
    x = torch.tensor([prompt], device=device)
    return sample_causal(model, special_ids, x, length, block_size, temperature, top_p, gen)[0].tolist()
