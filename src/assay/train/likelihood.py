"""Likelihoods in one unit, so masked-diffusion and autoregressive LMs can be compared.

Masked diffusion (MDLM, linear schedule alpha_t = 1 - t): the negative ELBO of a sequence x is

    NELBO(x) = E_{t ~ U(0,1)} [ (1/t) * sum_{i masked in z_t} -log p(x_i | z_t) ]

where z_t masks each token independently with probability t. It is estimated here with the
midpoint rule on a fixed grid t_k = (k + 0.5)/K and a mask per (block, t_k) drawn from a stable
seed, so the number is reproducible and independent of batch size and number of ranks.

Autoregressive: the mean next-token negative log-likelihood over the same blocks.

Both return nats per token; `to_bits_per_char` converts with the split's characters per token.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from assay.data.blocks import gather_blocks
from assay.masking.strategies import MaskVocab
from assay.model.transformer import IGNORE_INDEX
from assay.rng import generator

LN2 = math.log(2)  # nats per bit


def to_bits_per_char(nats_per_token: float, chars_per_token: float) -> float:
    return nats_per_token / LN2 / chars_per_token


@torch.no_grad()
def diffusion_nelbo(
    model,
    tokens: np.ndarray,
    starts: np.ndarray,
    block_len: int,
    vocab: MaskVocab,
    points: int,
    seed: int,
    batch_size: int,
    device,
    dist=None,
) -> float:
    """Negative ELBO in nats per token over the blocks at `starts` (sharded over ranks)."""
    ts = [(k + 0.5) / points for k in range(points)]
    total, n_tokens = 0.0, 0.0
    mine = starts if dist is None else starts[dist.rank :: dist.world_size]
    for i in range(0, len(mine), batch_size):
        batch_starts = mine[i : i + batch_size]
        x = gather_blocks(tokens, batch_starts, block_len)  # (B, T)
        maskable = vocab.maskable(x)
        n_tokens += float(maskable.sum())
        for k, t in enumerate(ts):
            # one mask per (block, t): reproducible whatever the batching
            u = torch.stack([torch.rand(block_len, generator=generator(seed, "elbo", k, int(s))) for s in batch_starts])
            mask = (u < t) & maskable
            if not mask.any():
                continue
            inputs = x.masked_fill(mask, vocab.mask_id).to(device)
            labels = x.masked_fill(~mask, IGNORE_INDEX).to(device)
            logits, _ = model(inputs, labels)  # (N, V) at masked positions
            ce = F.cross_entropy(logits.float(), labels[labels != IGNORE_INDEX], reduction="sum")
            total += float(ce) / t
    if dist is not None:
        total, n_tokens = dist.sum(total, n_tokens)
    return total / (points * max(n_tokens, 1.0))


@torch.no_grad()
def causal_nll(model, tokens, starts, block_len, batch_size, device, dist=None) -> float:
    """Mean next-token NLL in nats per token; blocks hold block_len + 1 tokens (inputs + 1)."""
    total, count = 0.0, 0.0
    mine = starts if dist is None else starts[dist.rank :: dist.world_size]
    for i in range(0, len(mine), batch_size):
        x = gather_blocks(tokens, mine[i : i + batch_size], block_len + 1)
        inputs, targets = x[:, :-1].to(device), x[:, 1:].to(device)
        logits, _ = model(inputs, targets)
        total += float(F.cross_entropy(logits.float(), targets.reshape(-1), reduction="sum"))
        count += targets.numel()
    if dist is not None:
        total, count = dist.sum(total, count)
    return total / max(count, 1.0)
