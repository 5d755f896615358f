"""Shard providers: shard (split, seq) -> a dict of tensors, a pure function of the seed.

`MaskedLMProvider` makes the masked-LM shards of the core (`stream.provider = "masked_lm"`); the
judges' synthetic shards come from `assay.judges.synthetic.SyntheticProvider`, a subclass. A provider
class names its `stream.provider` (`kind`) and builds itself from a training config (`build`):
`assay.data.produce.produce_stream` takes the class.

Every shard draws its blocks, stages, masks and samples from `generator(seed, "shard", split,
seq)`, so it is reproducible and independent of which worker makes it. Validation shards take
consecutive fixed blocks of the validation split; training shards draw blocks at random from
the training split. A shard's samples are spread evenly over the masking stages.

masked_lm   idx (n, T) int32 inputs with masks, targets (n, T) int32 (-100 where not masked),
            stage (n,)
"""

from __future__ import annotations

import numpy as np
import torch

from assay.data.blocks import fixed_blocks, gather_blocks
from assay.data.tokens import TokenSplits, prepare_tokens
from assay.masking import MaskingConfig, MaskVocab, apply_stage
from assay.model.transformer import IGNORE_INDEX
from assay.rng import generator


class MaskedLMProvider:
    kind = "masked_lm"

    def __init__(self, splits: TokenSplits, masking: MaskingConfig, block_len: int, shard_size: int, seed: int):
        self.splits, self.stages = splits, list(masking.stages)
        self.block_len, self.shard_size, self.seed = block_len, shard_size, seed
        self.vocab = MaskVocab.of(splits.tokenizer)
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

    @classmethod
    def build(cls, cfg, tokenizer=None, device="cpu"):
        """(provider, tokenizer, extra meta.json fields) for a training config. Masks are drawn on
        the CPU: `device` (for providers that run a model) is not used."""
        splits = prepare_tokens(cfg.data, tokenizer)
        return cls(splits, cfg.masking, cfg.data.block_size, cfg.stream.shard_size, cfg.run.seed), splits.tokenizer, {}

    def shard(self, split: str, seq: int) -> dict[str, torch.Tensor]:
        gen = generator(self.seed, "shard", split, seq)
        x = self.blocks(split, seq, gen)
        inputs, labels, _, _, stage = self.mask(x, gen)
        return {"idx": inputs.int(), "targets": labels.int(), "stage": stage.int()}
