"""Shard providers: shard (split, seq) -> a dict of tensors, a pure function of the seed.

Every shard draws its blocks, stages, masks and samples from `generator(seed, "shard", split,
seq)`, so it is reproducible and independent of which worker makes it. Validation shards take
consecutive fixed blocks of the validation split; training shards draw blocks at random from
the training split. A shard's samples are spread evenly over the masking stages.

masked_lm   idx (n, T) int32 inputs with masks, targets (n, T) int32 (-100 where not masked),
            stage (n,)
synthetic   idx (n, T) int32: [CLS] + real text whose masked tokens a masked-diffusion LM filled in;
            token_labels (n, T) int32: 0 original, 1 replaced by the LM, 2 randomly corrupted
            (with stream.random_frac > 0), -100 at [CLS]; a masked position the LM filled with
            the original token is labelled 0. score (n,) float32: the realised fraction of
            replaced tokens (labels > 0) of the sample; rate (n,): the intended masking ratio;
            masked (n, T) uint8: where masks were; original (n, T) int32; stage (n,)
"""

from __future__ import annotations

import numpy as np
import torch

from assay.data.blocks import fixed_blocks, gather_blocks
from assay.data.stream_config import StreamConfig
from assay.data.tokens import TokenSplits
from assay.generate.diffusion import unmask
from assay.masking import MaskingConfig, Vocab, apply_stage
from assay.model.transformer import IGNORE_INDEX
from assay.rng import generator


class MaskedLMProvider:
    def __init__(self, splits: TokenSplits, masking: MaskingConfig, block_len: int, shard_size: int, seed: int):
        self.splits, self.stages = splits, list(masking.stages)
        self.block_len, self.shard_size, self.seed = block_len, shard_size, seed
        self.vocab = Vocab.of(splits.tokenizer)
        self._val_starts = fixed_blocks(len(splits.val), block_len)

    def blocks(self, split: str, seq: int, gen: torch.Generator) -> torch.Tensor:
        n = self.shard_size
        if split == "val":
            index = (np.arange(seq * n, (seq + 1) * n)) % len(self._val_starts)
            return gather_blocks(self.splits.val, self._val_starts[index], self.block_len)
        high = len(self.splits.train) - self.block_len + 1
        starts = torch.randint(high, (n,), generator=gen).numpy()
        return gather_blocks(self.splits.train, starts, self.block_len)

    def mask(self, x: torch.Tensor, gen: torch.Generator):
        """Masks for a batch whose samples are spread evenly over the stages (shuffled)."""
        n = len(x)
        stage = (torch.arange(n) % len(self.stages))[torch.randperm(n, generator=gen)]
        inputs, labels = x.clone(), torch.full_like(x, IGNORE_INDEX)
        mask, rates = torch.zeros_like(x, dtype=torch.bool), torch.zeros(n)
        for s, cfg in enumerate(self.stages):
            rows = stage == s
            if rows.any():
                m = apply_stage(cfg, x[rows], self.vocab, gen)
                inputs[rows], labels[rows], mask[rows], rates[rows] = m.inputs, m.labels, m.mask, m.rates
        return inputs, labels, mask, rates, stage

    def shard(self, split: str, seq: int) -> dict[str, torch.Tensor]:
        gen = generator(self.seed, "shard", split, seq)
        x = self.blocks(split, seq, gen)
        inputs, labels, _, _, stage = self.mask(x, gen)
        return {"idx": inputs.int(), "targets": labels.int(), "stage": stage.int()}


class SyntheticProvider(MaskedLMProvider):
    """Real text, partly rewritten by a masked-diffusion LM: the training data of judges."""

    def __init__(self, splits, masking, block_size: int, cfg: StreamConfig, seed: int, lm):
        self.cls = cfg.cls
        super().__init__(splits, masking, block_size - (1 if cfg.cls else 0), cfg.shard_size, seed)
        self.cfg, self.lm = cfg, lm.eval()

    def shard(self, split: str, seq: int) -> dict[str, torch.Tensor]:
        gen = generator(self.seed, "shard", split, seq)
        x = self.blocks(split, seq, gen)  # (n, L) real tokens
        _, _, mask, rates, stage = self.mask(x, gen)
        maskable = self.vocab.maskable(x)
        # Every selected position becomes [MASK] (a BERT stage's random/keep variants are for
        # LM training, not for rewriting), then the LM fills them in; it never emits specials.
        filled = unmask(
            self.lm,
            x.masked_fill(mask, self.vocab.mask_id),
            self.vocab,
            self.cfg.steps,
            self.cfg.temperature,
            self.cfg.top_p,
            gen,
        )
        labels = torch.zeros_like(x)
        labels[mask & (filled != x)] = 1
        if self.cfg.random_frac > 0:
            corrupt = (torch.rand(x.shape, generator=gen) < self.cfg.random_frac) & maskable & ~mask
            noise = self.vocab.random_tokens(x.shape, gen)
            filled = torch.where(corrupt, noise, filled)
            labels[corrupt & (noise != x)] = 2
        score = (labels > 0).sum(1) / maskable.sum(1).clamp_min(1)
        labels = labels.masked_fill(~maskable, IGNORE_INDEX)
        original = x
        if self.cls:
            cls = torch.full((len(x), 1), self.splits.tokenizer.cls_id, dtype=x.dtype)
            filled, original = torch.cat([cls, filled], 1), torch.cat([cls, x], 1)
            labels = torch.cat([torch.full_like(cls, IGNORE_INDEX), labels], 1)
            mask = torch.cat([torch.zeros_like(cls, dtype=torch.bool), mask], 1)
        return {
            "idx": filled.int(),
            "token_labels": labels.int(),
            "score": score.float(),
            "rate": rates.float(),
            "masked": mask.to(torch.uint8),
            "original": original.int(),
            "stage": stage.int(),
        }
