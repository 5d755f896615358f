"""What a training objective changes, and the task tables that name the objectives.

The loop (`trainer.Trainer`) is the same for every objective. A `Task` supplies what differs: the
model it trains (`build_model`), the batches (`train_batch`), the loss (`loss`), the evaluation
(`evaluate`) and its resumable state. An objective plugs in by name, through a task table
(objective name -> Task class) that the caller passes in:

    CORE_TASKS (train/lm_tasks.py)   diffusion, autoregressive: the language models of the core
    a feature's table                e.g. assay.judges.tasks.TASKS (token_classification,
                                     sequence_scoring), the connectives experiment's TASKS
    the CLI's table                  all of them (assay/cli/tasks.py)

The core never imports a feature: a feature's task subclasses `Task` and is handed to `train`,
`load_checkpoint` or `evaluate_checkpoint` by whoever knows it.

A config names its objective through `TrainingConfig.objective` (from `model.mode` and
`model.attention`), unless its masking stages are of a kind only one task of the table declares
(`Task.stage_kinds`): that task's objective then wins, and its `config_class` validates the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from assay.config import build_tree, validate
from assay.errors import ConfigError
from assay.model import Transformer
from assay.train.config import TrainingConfig, objective_for_model


class Task:
    """The interface the trainer uses; the hooks default to doing nothing.

    create(cfg, dist, device, tokenizer, splits)  -> the task (splits: token splits of a corpus, or
                                                   None when the config trains from a stream)
    build_model(cfg)               -> the model to train (a Transformer or a subclass with extra heads)
    train_batch()                  -> one micro-batch: keyword arguments of `loss`
    loss(model, batch)             -> the scalar training loss (model: what the loop calls, i.e. the
                                      DDP/compiled wrapper, so every parameter is reached through
                                      its forward)
    evaluate(model, final)         -> metrics with at least `val_loss`
    evaluating_other_data(own)     before a standalone evaluation on data the run did not train on
    state_dict()/load_state_dict()          shared state (the same on every rank), JSON
    rank_state_dict()/load_rank_state_dict()  per-rank state (generators), may hold tensors
    """

    objective: ClassVar[str] = ""
    config_class: ClassVar[type[TrainingConfig]] = TrainingConfig
    # masking stage kinds that only this task understands (they select it, see the module doc)
    stage_kinds: ClassVar[frozenset[str]] = frozenset()
    # what `assay report` shows of a finished run: (label, eval.json key, its baseline's key or None)
    report_columns: ClassVar[list[tuple[str, str, str | None]]] = [("val loss", "val_loss", None)]
    # plain names `assay eval` adds beside some metrics (alias -> metric key), e.g. auroc -> val_auroc
    eval_aliases: ClassVar[dict[str, str]] = {}
    block_len: int

    @classmethod
    def create(cls, cfg: TrainingConfig, dist, device, tokenizer, splits=None) -> Task:
        return cls(cfg, dist, device, tokenizer, splits)

    @classmethod
    def build_model(cls, cfg: TrainingConfig) -> Transformer:
        return Transformer(cfg.model)

    def train_batch(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        _, loss = model(**batch)
        return loss

    def evaluate(self, model, final: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def val_size(self) -> int:
        """Validation samples (blocks or stream rows) an evaluation covers."""
        raise NotImplementedError

    def setup_model(self, model, resumed: bool) -> None:
        """Adjust a new model to the data (e.g. class weights) before training starts."""

    def observe(self, metrics: dict[str, Any]) -> dict[str, Any] | None:
        """Called after each evaluation. When the task changed (a curriculum stage), an event for
        metrics.jsonl: {"event": ..., "message": text for the log, ...}."""
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

    def load_eval_state(self, state: dict[str, Any]) -> None:
        """What a standalone evaluation of a checkpoint takes from its saved state (e.g. the
        curriculum stage it reached); the data cursor is not needed."""

    def evaluating_other_data(self, own: TrainingConfig) -> None:
        """Called by a standalone evaluation on data the run did not train on (`assay eval --stream`
        or `--corpus`; the task's config then names that data), with the run's own config: what
        the task fits on training data (the judges' baseline direction) should come from the run's
        own training data while it is still there, never from the data evaluated."""

    def rank_state_dict(self) -> dict[str, Any]:
        return {}

    def load_rank_state_dict(self, state: dict[str, Any]) -> None:
        pass


TaskTable = Mapping[str, type[Task]]


def objective_of(tree: dict[str, Any], tasks: TaskTable) -> str:
    """The objective of a raw (not yet validated) config tree; see the module docstring."""
    stages = (tree.get("masking") or {}).get("stages") or []
    kinds = {stage.get("kind") for stage in stages if isinstance(stage, dict)}
    for name, task in tasks.items():
        if task.stage_kinds & kinds:
            return name
    model = tree.get("model") or {}
    return objective_for_model(str(model.get("mode", "language_model")), str(model.get("attention", "")))


def task_for(objective: str, tasks: TaskTable) -> type[Task]:
    if objective not in tasks:
        raise ConfigError(f"no task trains objective {objective!r} here (known: {', '.join(tasks)})")
    return tasks[objective]


def load_training_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...], tasks: TaskTable
) -> TrainingConfig:
    """A training config from a TOML file and `--set` overrides, validated by the config class of
    its objective's task (one-line ConfigError otherwise)."""
    tree = build_tree(path, overrides)
    return validate(task_for(objective_of(tree, tasks), tasks).config_class, tree)
