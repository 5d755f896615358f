"""The judges' training data: real text, partly rewritten by a masked-diffusion LM.

A synthetic shard masks blocks of real text with the masking stages, lets the LM fill the masks in
(`assay.generate.diffusion.unmask`) and labels every token. Fields of a shard of n samples:

    idx (n, T) int32: [CLS] + real text whose masked tokens a masked-diffusion LM filled in;
                token_labels (n, T) int32: 0 original, 1 replaced by the LM, 2 randomly corrupted
                (with stream.random_frac > 0), -100 at [CLS]; a masked position the LM filled with
                the original token is labelled 0. score (n,) float32: the realised fraction of
                replaced tokens (labels > 0) of the sample; rate (n,): the intended masking ratio;
                masked (n, T) uint8: where masks were; original (n, T) int32; stage (n,)

`SyntheticProvider` is the provider of `assay data produce` for `stream.provider = "synthetic"`
(see assay.data.produce).
"""

from __future__ import annotations

import torch

from assay.data.config import StreamConfig
from assay.data.providers import MaskedLMProvider
from assay.data.tokens import prepare_tokens
from assay.devices import resolve_device
from assay.errors import ConfigError
from assay.generate.diffusion import unmask
from assay.model.transformer import IGNORE_INDEX
from assay.rng import generator
from assay.train.checkpoint import load_checkpoint


class SyntheticProvider(MaskedLMProvider):
    """Real text, partly rewritten by a masked-diffusion LM: the training data of judges."""

    kind = "synthetic"

    @classmethod
    def build(cls, cfg, tokenizer=None, device="cpu"):
        """(provider, tokenizer, extra meta.json fields); loads the LM of `stream.lm` onto `device`."""
        ckpt = load_checkpoint(cfg.stream.lm)
        if ckpt.config.model.mode != "language_model" or ckpt.config.model.causal:
            raise ConfigError(f"stream.lm must be a masked-diffusion LM; {ckpt.directory} is {ckpt.config.objective}")
        if cfg.data.block_size > ckpt.config.data.block_size:
            raise ConfigError(
                f"data.block_size ({cfg.data.block_size}) exceeds the LM's block size ({ckpt.config.data.block_size})"
            )
        splits = prepare_tokens(cfg.data, ckpt.tokenizer)
        provider = cls(
            splits, cfg.masking, cfg.data.block_size, cfg.stream, cfg.run.seed, ckpt.build_model(resolve_device(device))
        )
        extra = {"lm": str(ckpt.directory.resolve()), "num_classes": 3 if cfg.stream.random_frac > 0 else 2}
        return provider, splits.tokenizer, extra

    def __init__(self, splits, masking, block_size: int, cfg: StreamConfig, seed: int, lm):
        self.cls = cfg.cls
        super().__init__(splits, masking, block_size - (1 if cfg.cls else 0), cfg.shard_size, seed)
        self.cfg, self.lm = cfg, lm.eval()
        self.device = next(lm.parameters()).device

    def shard(self, split: str, seq: int) -> dict[str, torch.Tensor]:
        gen = generator(self.seed, "shard", split, seq)
        x = self.blocks(split, seq, gen)  # (n, L) real tokens
        _, _, mask, rates, stage = self.mask(x, gen)
        maskable = self.vocab.maskable(x)
        # Every selected position becomes [MASK] (a BERT stage's random/keep variants are for
        # LM training, not for rewriting), then the LM fills them in; it never emits specials.
        filled = unmask(
            self.lm,
            x.masked_fill(mask, self.vocab.mask_id).to(self.device),
            self.vocab,
            self.cfg.steps,
            self.cfg.temperature,
            self.cfg.top_p,
            gen,
        ).cpu()
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
