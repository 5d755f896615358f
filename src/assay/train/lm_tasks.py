"""The core's objectives: language models trained from a corpus (masked diffusion, autoregressive)
or, for masked diffusion, from a stream of masked-LM shards (`stream_tasks`). `CORE_TASKS` is the
task table of the core (see train/task.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from assay.data.blocks import BlockSampler, fixed_blocks, gather_blocks
from assay.data.tokens import TokenSplits
from assay.errors import ConfigError
from assay.masking import Curriculum, MaskVocab, apply_stage
from assay.masking.strategies import expected_rate
from assay.model.transformer import IGNORE_INDEX
from assay.rng import generator
from assay.train.config import TrainingConfig
from assay.train.likelihood import LN2, causal_nll, diffusion_nelbo, to_bits_per_char
from assay.train.stream_tasks import StreamMaskedLMTask
from assay.train.task import Task


class LanguageModelTask(Task):
    """Shared by both LM objectives: token blocks in, a fixed validation set out."""

    extra_tokens = 0  # tokens per block beyond data.block_size (the causal LM's shifted target)

    def __init__(self, cfg: TrainingConfig, dist, device, tokenizer, splits: TokenSplits | None = None):
        if splits is None:
            raise ConfigError(f"{cfg.objective} training reads a corpus, not a stream: unset data.stream")
        self.cfg, self.splits, self.dist, self.device = cfg, splits, dist, device
        self.block_len = cfg.data.block_size + self.extra_tokens
        self.sampler = BlockSampler(len(splits.train), self.block_len, cfg.run.seed, dist.rank, dist.world_size)
        self.val_starts = fixed_blocks(len(splits.val), self.block_len, cfg.train.eval_blocks)
        self.chars_per_token = splits.chars_per_token("val")

    def next_blocks(self) -> torch.Tensor:
        starts = self.sampler.next_starts(self.cfg.train.batch_size)
        return gather_blocks(self.splits.train, starts, self.block_len)

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])

    @property
    def val_size(self) -> int:
        return len(self.val_starts)

    def _val_batches(self, starts: np.ndarray):
        """This rank's share of the fixed validation blocks, batch by batch."""
        mine = starts[self.dist.rank :: self.dist.world_size]
        bs = self.cfg.train.batch_size
        for i in range(0, len(mine), bs):
            yield mine[i : i + bs]


class MaskedDiffusionTask(LanguageModelTask):
    """Bidirectional LM trained to unmask: the curriculum's current stage masks each batch."""

    objective = "diffusion"
    report_columns = [("val loss", "val_loss", None), ("bits/char (ELBO)", "bits_per_char", None)]

    @classmethod
    def create(cls, cfg, dist, device, tokenizer, splits=None):
        if cfg.data.stream:  # the same objective, fed by a stream of masked-LM shards
            return StreamMaskedLMTask(cfg, dist, device, tokenizer)
        return cls(cfg, dist, device, tokenizer, splits)

    def __init__(self, cfg, dist, device, tokenizer, splits=None):
        super().__init__(cfg, dist, device, tokenizer, splits)
        self.vocab = MaskVocab.of(splits.tokenizer)
        self.curriculum = Curriculum(cfg.masking.stages, cfg.masking.patience, cfg.masking.min_delta)
        self.mask_gen = generator(cfg.run.seed, "masking", dist.rank)

    def train_batch(self) -> dict[str, torch.Tensor]:
        x = self.next_blocks()
        masked = apply_stage(self.curriculum.stage, x, self.vocab, self.mask_gen)
        batch = {"idx": masked.inputs, "targets": masked.labels}
        if self.cfg.masking.loss == "elbo":
            # 1 / (t * T): t the sample's masking rate (floored like MDLM's eps), T its maskable tokens
            n = self.vocab.maskable(x).sum(1).clamp_min(1)
            per_sample = 1.0 / (masked.rates.clamp_min(1e-3) * n)  # (B,)
            batch["weights"] = per_sample[:, None].expand_as(x) * masked.mask
        return batch

    @torch.no_grad()
    def evaluate(self, model, final: bool = False) -> dict[str, float]:
        """Masked-LM loss (mean cross-entropy over masked tokens) for every stage on the same fixed
        blocks and masks; `val_loss` is their mean, `val_loss_stage` the current stage's."""
        out: dict[str, float] = {}
        for s, stage in enumerate(self.cfg.masking.stages):
            total, count = 0.0, 0.0
            for starts in self._val_batches(self.val_starts):
                x = gather_blocks(self.splits.val, starts, self.block_len)
                # a fixed mask per (stage, block): the same at every evaluation
                g = generator(self.cfg.run.seed, "val-mask", s, int(starts[0]))
                masked = apply_stage(stage, x, self.vocab, g)
                logits, _ = model(masked.inputs.to(self.device), masked.labels.to(self.device))
                targets = masked.labels[masked.labels != IGNORE_INDEX].to(self.device)
                total += float(F.cross_entropy(logits.float(), targets, reduction="sum"))
                count += targets.numel()
            total, count = self.dist.sum(total, count)
            out[f"val_loss/{s}"] = total / max(count, 1.0)
        losses = [out[f"val_loss/{s}"] for s in range(len(self.cfg.masking.stages))]
        out["val_loss"] = sum(losses) / len(losses)
        out["val_loss_stage"] = losses[self.curriculum.index]
        out["val_bits_per_token"] = out["val_loss"] / LN2
        out["stage"] = self.curriculum.index
        if final or self.cfg.train.elbo_every_eval:
            nelbo = diffusion_nelbo(
                model,
                self.splits.val,
                self.val_starts,
                self.block_len,
                self.vocab,
                self.cfg.train.elbo_points,
                self.cfg.run.seed,
                self.cfg.train.batch_size,
                self.device,
                self.dist,
            )
            out["val_elbo_nats_per_token"] = nelbo
            out["val_elbo_bits_per_char"] = to_bits_per_char(nelbo, self.chars_per_token)
            out["bits_per_char"] = out["val_elbo_bits_per_char"]
        return out

    def observe(self, metrics):
        stage = self.curriculum.stage
        if not self.curriculum.observe(metrics["val_loss_stage"]):
            return None
        new = self.curriculum.stage
        message = (
            f"curriculum: stage {self.curriculum.index - 1} ({stage.kind}, rate≈{expected_rate(stage):.2f}) "
            f"-> stage {self.curriculum.index} ({new.kind}, rate≈{expected_rate(new):.2f})"
        )
        return {"event": "stage", "stage": self.curriculum.index, "message": message}

    def state_dict(self):
        return super().state_dict() | {"curriculum": self.curriculum.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.curriculum.load_state_dict(state["curriculum"])

    def load_eval_state(self, state):
        self.curriculum.load_state_dict(state["curriculum"])  # report the stage the run had reached

    def rank_state_dict(self):
        return {"mask_gen": self.mask_gen.get_state()}

    def load_rank_state_dict(self, state):
        self.mask_gen.set_state(state["mask_gen"])


class AutoregressiveTask(LanguageModelTask):
    """Causal LM: predict token i+1 from tokens <= i."""

    objective = "autoregressive"
    report_columns = [("val loss", "val_loss", None), ("bits/char", "bits_per_char", None)]
    extra_tokens = 1

    def train_batch(self) -> dict[str, torch.Tensor]:
        x = self.next_blocks()  # (B, T + 1)
        return {"idx": x[:, :-1], "targets": x[:, 1:]}

    @torch.no_grad()
    def evaluate(self, model, final: bool = False) -> dict[str, float]:
        bs = self.cfg.train.batch_size
        nll = causal_nll(model, self.splits.val, self.val_starts, self.cfg.data.block_size, bs, self.device, self.dist)
        bpc = to_bits_per_char(nll, self.chars_per_token)
        return {"val_loss": nll, "val_bits_per_token": nll / LN2, "bits_per_char": bpc}


CORE_TASKS: dict[str, type[Task]] = {
    MaskedDiffusionTask.objective: MaskedDiffusionTask,
    AutoregressiveTask.objective: AutoregressiveTask,
}
