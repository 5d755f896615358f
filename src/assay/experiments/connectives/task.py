"""Masked-LM training with targeted masking of logical connectives (`ConnectiveStage`): the task
of the objective "connectives", and the model with a connective-class head it trains when a stage
asks for one (strategy contrastive). `TASKS` is the experiment's task table (see assay.train.task).

The training and validation texts are annotated once (`assay.experiments.connectives.inventory.annotate`, the
same tokens as the token cache, checked); every batch carries its blocks' annotations to the
policy. Validation is the same for every strategy, so runs can be compared and selected on it:
fixed masks that depend only on the block (not on the run's seed or strategy) --

    val_loss            masked-LM loss, uniform random masking at the stage's overall rate
    val_connective_loss loss on connective tokens when each occurrence is masked with prob 0.5
                        (whole words) and the other tokens at the overall rate
    val_other_loss      loss on the non-connective tokens of those same masks
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from assay.data.blocks import fixed_blocks, gather_blocks
from assay.data.tokens import split_texts
from assay.errors import DataError
from assay.experiments.connectives.config import ConnectiveStage, ConnectiveTrainingConfig
from assay.experiments.connectives.inventory import Annotations, Inventory, annotate, load_inventory
from assay.experiments.connectives.policy import ConnectiveBlocks, ConnectivePolicy, ConnectiveStats
from assay.masking.strategies import mask_random
from assay.model import ModelConfig, Transformer
from assay.model.transformer import IGNORE_INDEX
from assay.rng import generator
from assay.train.likelihood import LN2
from assay.train.lm_tasks import MaskedDiffusionTask

LOSS_PROBE_BLOCKS = 64  # fixed training blocks the running per-connective loss is measured on


class ClassHeadTransformer(Transformer):
    """The masked LM plus a linear head that predicts a connective's class from the same hidden
    states (strategy contrastive). Its loss, at the masked connective positions `class_targets`
    labels (-100 elsewhere), is added to the LM loss with `class_weight`. Without class targets it
    is the plain LM (generation, evaluation)."""

    def __init__(self, cfg: ModelConfig, n_classes: int):
        super().__init__(cfg)
        self.class_head = nn.Linear(cfg.n_embd, n_classes, bias=True)
        nn.init.normal_(self.class_head.weight, mean=0.0, std=0.02)
        nn.init.zeros_(self.class_head.bias)

    def forward(self, idx, targets=None, padding_mask=None, weights=None, class_targets=None, class_weight=1.0):
        x = self.trunk(idx, padding_mask)  # (B, T, C)
        logits, loss = self.head_outputs(x, targets, padding_mask, weights)
        if class_targets is not None:
            loss = loss + class_weight * self.class_loss(x, class_targets)
        return logits, loss

    def class_loss(self, x: torch.Tensor, class_targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the class head at the positions class_targets labels."""
        keep = class_targets != IGNORE_INDEX
        if not keep.any():  # touch the head anyway: DDP expects a gradient for every parameter
            return x.sum() * 0.0 + self.class_head.weight.sum() * 0.0
        return F.cross_entropy(self.class_head(x[keep]), class_targets[keep])


def class_head_size(cfg: ConnectiveTrainingConfig) -> int:
    """Classes of the connective-class head the stages ask for (0: no head)."""
    heads = [s for s in cfg.masking.stages if s.aux_weight > 0]
    return len(load_inventory(heads[0].inventory).classes) if heads else 0


def annotate_splits(
    texts: dict[str, str], tokenizer, inventory: Inventory
) -> dict[str, tuple[np.ndarray, Annotations]]:
    """{split: (ids, annotations)} for the texts of `split_texts`."""
    return {split: annotate(text, tokenizer, inventory) for split, text in texts.items()}


class ConnectiveTask(MaskedDiffusionTask):
    objective = "connectives"
    report_columns = [("val loss", "val_loss", None), ("connective loss", "val_connective_loss", None)]
    config_class = ConnectiveTrainingConfig
    stage_kinds = frozenset({"connectives"})

    @classmethod
    def create(cls, cfg, dist, device, tokenizer, splits=None):
        return cls(cfg, dist, device, tokenizer, splits)  # from the annotated corpus only

    @classmethod
    def build_model(cls, cfg: ConnectiveTrainingConfig) -> Transformer:
        n_classes = class_head_size(cfg)
        return ClassHeadTransformer(cfg.model, n_classes) if n_classes else Transformer(cfg.model)

    def __init__(self, cfg, dist, device, tokenizer, splits=None):
        super().__init__(cfg, dist, device, tokenizer, splits)
        stages: list[ConnectiveStage] = list(cfg.masking.stages)
        if len({s.inventory for s in stages}) > 1:
            raise DataError("all connective stages of a run must use the same inventory")
        self.inventory = load_inventory(stages[0].inventory)
        annotated = annotate_splits(split_texts(cfg.data)[2], splits.tokenizer, self.inventory)
        for split, (ids, _) in annotated.items():
            cached = getattr(splits, split)
            if len(ids) != len(cached) or not np.array_equal(ids, cached):
                raise DataError(f"connective annotations do not match the cached {split} tokens; clear the token cache")
        self.train_ann, self.val_ann = annotated["train"][1], annotated["val"][1]
        self.stats = ConnectiveStats.of(self.train_ann, self.inventory.class_of)
        self.policies = [ConnectivePolicy(s, self.stats) for s in stages]
        # the fixed validation probe of each stage: every occurrence with prob 0.5, others at its rate
        self.probes = [
            ConnectivePolicy(ConnectiveStage(strategy="uniform", p=0.5, rate=s.rate), self.stats) for s in stages
        ]
        self.probe_starts = fixed_blocks(len(splits.train), self.block_len, LOSS_PROBE_BLOCKS)
        self._measured: np.ndarray | None = None

    @property
    def policy(self) -> ConnectivePolicy:
        return self.policies[self.curriculum.index]

    def describe(self) -> str:
        return self.policy.describe()

    def train_batch(self) -> dict[str, torch.Tensor]:
        starts = self.sampler.next_starts(self.cfg.train.batch_size)
        x = gather_blocks(self.splits.train, starts, self.block_len)
        blocks = ConnectiveBlocks.gather(self.train_ann, starts, self.block_len)
        masked, class_targets = self.policy(x, blocks, self.vocab, self.mask_gen)
        batch = {"idx": masked.inputs, "targets": masked.labels}
        if self.policy.stage.aux_weight > 0:
            batch["class_targets"] = class_targets
            batch["class_weight"] = torch.tensor(self.policy.stage.aux_weight)
        return batch

    def _fixed_masks(self, x: torch.Tensor, blocks: ConnectiveBlocks, key: int):
        """(random masks at the stage's rate, connective-probe masks) for one batch, fixed by `key`."""
        rate = self.policy.stage.rate
        plain = mask_random(x, self.vocab, generator("connective-val", "random", key), rate=rate)
        probe = self.probes[self.curriculum.index]
        probed, _ = probe(x, blocks, self.vocab, generator("connective-val", "probe", key))
        return plain, probed

    @torch.no_grad()
    def evaluate(self, model, final: bool = False) -> dict[str, Any]:
        sums = np.zeros(6)  # loss, count (random) | connective loss, count | other loss, count
        for starts in self._val_batches(self.val_starts):
            x = gather_blocks(self.splits.val, starts, self.block_len)
            blocks = ConnectiveBlocks.gather(self.val_ann, starts, self.block_len)
            plain, probed = self._fixed_masks(x, blocks, int(starts[0]))
            ce = _masked_ce(model, plain, self.device)
            sums[0:2] += float(ce.sum()), ce.numel()
            ce = _masked_ce(model, probed, self.device)
            is_conn = (blocks.occ >= 0)[probed.mask].to(self.device)
            sums[2:4] += float(ce[is_conn].sum()), int(is_conn.sum())
            sums[4:6] += float(ce[~is_conn].sum()), int((~is_conn).sum())
        sums = np.array(self.dist.sum(*sums.tolist()))
        out: dict[str, Any] = {
            "val_loss": sums[0] / max(sums[1], 1),
            "val_connective_loss": sums[2] / max(sums[3], 1),
            "val_other_loss": sums[4] / max(sums[5], 1),
        }
        out["val_loss_stage"] = out["val_loss"]
        out["val_bits_per_token"] = out["val_loss"] / LN2
        out["stage"] = self.curriculum.index
        if any(p.stage.strategy == "weighted" and p.stage.weight_source == "loss" for p in self.policies):
            self._measured = self._per_form_train_loss(model)
        return out

    def summary(self, metrics):
        return f" | connectives {metrics['val_connective_loss']:.4f} | others {metrics['val_other_loss']:.4f}"

    def _per_form_train_loss(self, model) -> np.ndarray:
        """(F,) mean loss of each form's tokens on fixed training blocks (NaN: form not seen)."""
        n_forms = len(self.inventory.forms)
        total, count = np.zeros(n_forms), np.zeros(n_forms)
        bs = self.cfg.train.batch_size
        for i in range(0, len(self.probe_starts), bs):
            starts = self.probe_starts[i : i + bs]
            x = gather_blocks(self.splits.train, starts, self.block_len)
            blocks = ConnectiveBlocks.gather(self.train_ann, starts, self.block_len)
            _, probed = self._fixed_masks(x, blocks, int(starts[0]) + 1)
            ce = _masked_ce(model, probed, self.device).cpu().double().numpy()
            form = blocks.form[probed.mask].numpy()
            seen = form >= 0
            np.add.at(total, form[seen], ce[seen])
            np.add.at(count, form[seen], 1)
        total, count = np.array(self.dist.sum(*total.tolist())), np.array(self.dist.sum(*count.tolist()))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    def observe(self, metrics):
        if self._measured is not None:
            for policy in self.policies:
                policy.update_losses(self._measured)
            self._measured = None
        return super().observe(metrics)

    def state_dict(self):
        return super().state_dict() | {"policies": [p.state_dict() for p in self.policies]}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for policy, saved in zip(self.policies, state["policies"], strict=True):
            policy.load_state_dict(saved)


def _masked_ce(model, masked, device) -> torch.Tensor:
    """Per-token cross-entropy at the masked positions, in row-major order."""
    labels = masked.labels.to(device)
    logits, _ = model(masked.inputs.to(device), labels)
    return F.cross_entropy(logits.float(), labels[labels != IGNORE_INDEX], reduction="none")


TASKS = {ConnectiveTask.objective: ConnectiveTask}
