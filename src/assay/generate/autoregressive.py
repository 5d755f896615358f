"""Autoregressive sampling for a causal LM (no KV cache: the models are small)."""

from __future__ import annotations

import torch

from assay.sampling import draw, probabilities


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
    gen = gen or torch.Generator().manual_seed(0)
    x = torch.tensor([prompt], device=device)
    for _ in range(length):
        logits, _ = model(x[:, -block_size:])  # (1, T, V)
        next_id, _ = draw(probabilities(logits[:, -1], temperature, top_p, special_ids), gen)
        x = torch.cat([x, next_id[:, None]], dim=1)
    return x[0, len(prompt) :].tolist()
