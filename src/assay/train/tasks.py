"""What a training mode changes: how a batch is made and what validation measures.

The training loop is the same for every mode; a `Task` supplies the batches, the evaluation and
its state. Corpus-fed language models live here; stream-fed tasks in `stream_tasks`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from assay.data.blocks import BlockSampler, fixed_blocks, gather_blocks
from assay.data.tokens import TokenSplits
from assay.errors import ConfigError
from assay.masking import Curriculum, Vocab, apply_stage
from assay.masking.strategies import expected_rate
from assay.model.transformer import IGNORE_INDEX
from assay.rng import generator
from assay.train.config import TrainingConfig
from assay.train.likelihood import causal_nll, diffusion_nelbo, to_bits_per_char

LN2 = math.log(2)


class Task:
    """The interface the trainer uses; the hooks default to doing nothing.

    train_batch()                 -> kwargs for model(...)   (idx, targets, ...)
    evaluate(model, final)        -> metrics with at least `val_loss`
    state_dict()/load_state_dict()          shared state (the same on every rank), JSON
    rank_state_dict()/load_rank_state_dict()  per-rank state (generators), may hold tensors
    """

    block_len: int

    def train_batch(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def evaluate(self, model, final: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def setup_model(self, model, resumed: bool) -> None:
        """Adjust a new model to the data (e.g. class weights) before training starts."""

    def observe(self, metrics: dict[str, Any]) -> str | None:
        """Called after each evaluation; a message when the task changed (a curriculum stage)."""
        return None

    def summary(self, metrics: dict[str, Any]) -> str:
        """Extra text for the evaluation log line."""
        return ""

    def on_checkpoint(self) -> None:
        """Called before a checkpoint is written."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def rank_state_dict(self) -> dict[str, Any]:
        return {}

    def load_rank_state_dict(self, state: dict[str, Any]) -> None:
        pass


class LanguageModelTask(Task):
    """Shared by both LM objectives: token blocks in, a fixed validation set out."""

    def __init__(self, cfg: TrainingConfig, splits: TokenSplits, dist, device, extra_tokens: int):
        self.cfg, self.splits, self.dist, self.device = cfg, splits, dist, device
        self.block_len = cfg.data.block_size + extra_tokens
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

    def _val_batches(self, starts: np.ndarray):
        """This rank's share of the fixed validation blocks, batch by batch."""
        mine = starts[self.dist.rank :: self.dist.world_size]
        bs = self.cfg.train.batch_size
        for i in range(0, len(mine), bs):
            yield mine[i : i + bs]


class MaskedDiffusionTask(LanguageModelTask):
    """Bidirectional LM trained to unmask: the curriculum's current stage masks each batch."""

    def __init__(self, cfg, splits, dist, device):
        super().__init__(cfg, splits, dist, device, extra_tokens=0)
        self.vocab = Vocab.of(splits.tokenizer)
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
        if self.curriculum.observe(metrics["val_loss_stage"]):
            new = self.curriculum.stage
            return (
                f"curriculum: stage {self.curriculum.index - 1} ({stage.kind}, rate≈{expected_rate(stage):.2f}) "
                f"-> stage {self.curriculum.index} ({new.kind}, rate≈{expected_rate(new):.2f})"
            )
        return None

    def state_dict(self):
        return super().state_dict() | {"curriculum": self.curriculum.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.curriculum.load_state_dict(state["curriculum"])

    def rank_state_dict(self):
        return {"mask_gen": self.mask_gen.get_state()}

    def load_rank_state_dict(self, state):
        self.mask_gen.set_state(state["mask_gen"])


class AutoregressiveTask(LanguageModelTask):
    """Causal LM: predict token i+1 from tokens <= i."""

    def __init__(self, cfg, splits, dist, device):
        super().__init__(cfg, splits, dist, device, extra_tokens=1)

    def train_batch(self) -> dict[str, torch.Tensor]:
        x = self.next_blocks()  # (B, T + 1)
        return {"idx": x[:, :-1], "targets": x[:, 1:]}

    @torch.no_grad()
    def evaluate(self, model, final: bool = False) -> dict[str, float]:
        bs = self.cfg.train.batch_size
        nll = causal_nll(model, self.splits.val, self.val_starts, self.cfg.data.block_size, bs, self.device, self.dist)
        bpc = to_bits_per_char(nll, self.chars_per_token)
        return {"val_loss": nll, "val_bits_per_token": nll / LN2, "bits_per_char": bpc}


def configure_model(cfg: TrainingConfig, tokenizer) -> None:
    """Fill in the model settings that come from the data and the task, before it is built."""
    cfg.model.vocab_size = tokenizer.vocab_size
    if cfg.masking.targets_connectives and cfg.model.mode == "language_model":
        from assay.train.connective_task import aux_classes_needed

        cfg.model.aux_classes = aux_classes_needed(cfg.masking) or cfg.model.aux_classes


def make_task(cfg: TrainingConfig, splits: TokenSplits | None, dist, device, tokenizer=None):
    """The task of a config: from the corpus (`splits`) or, with data.stream, from a stream."""
    if cfg.data.stream:
        from assay.train import stream_tasks as st

        tasks = {
            "diffusion": st.StreamMaskedLMTask,
            "token_classification": st.TokenClassificationTask,
            "sequence_scoring": st.SequenceScoringTask,
        }
        if cfg.objective not in tasks:
            raise ConfigError(f"{cfg.objective} training reads a corpus, not a stream: unset data.stream")
        return tasks[cfg.objective](cfg, dist, device, tokenizer)
    if cfg.objective == "diffusion":
        if cfg.masking.targets_connectives:
            from assay.train.connective_task import ConnectiveTask

            return ConnectiveTask(cfg, splits, dist, device)
        return MaskedDiffusionTask(cfg, splits, dist, device)
    return AutoregressiveTask(cfg, splits, dist, device)
