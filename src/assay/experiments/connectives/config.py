"""The configs of the connectives experiment: the masking stage that targets connectives, the
training config of a run that uses it, and the experiment's own config (strategies x seeds)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from assay.config import Section, to_dict, validate
from assay.data.config import DataConfig
from assay.data.kjv import TEST_BOOKS, VAL_BOOKS
from assay.masking.config import MaskingConfig
from assay.model.config import ModelConfig
from assay.train.config import RunConfig, TrainConfig, TrainingConfig


class ConnectiveStage(Section):
    """Targeted masking of logical connectives (docs/connectives.md), over background random masking.

    Every strategy masks `rate` of the maskable tokens in expectation, and all but `random` mask a
    connective occurrence with probability `p` on average (whole words, never partly): they
    differ only in *which* connectives are masked. Background random masking of the other tokens
    fills each sample up to `rate`. Needs a corpus the finder can annotate (inventory.py).

    random       no targeting: every token masked with probability `rate` (the baseline)
    uniform      each occurrence with probability p
    weighted     per-connective probability proportional to a weight: count^-alpha
                 (weight_source = frequency: rarer connectives more often) or running_loss^beta
                 (weight_source = loss: the model's current loss on each connective, re-measured
                 at every evaluation on fixed training blocks)
    structural   verse-initial and clause-initial occurrences (after , ; : . ? !) `boost` times
                 as likely as the others
    contrastive  uniform, plus an auxiliary head that predicts the connective's class at masked
                 connective positions, its loss added with `aux_weight`
    chain        in verses with two or more connectives, all of them masked together with
                 probability q; the other occurrences at the rate that keeps the mean at p
    """

    kind: Literal["connectives"] = Field("connectives", description="The strategy family.")
    strategy: Literal["random", "uniform", "weighted", "structural", "contrastive", "chain"] = Field(
        "uniform", description="Which connective occurrences are masked (the list above, docs/connectives.md)."
    )
    rate: float = Field(
        0.15, gt=0.0, le=1.0, description="Share of the maskable tokens masked in expectation (background included)."
    )
    p: float = Field(
        0.5, ge=0.0, le=1.0, description="Mean probability of masking a connective occurrence (not random)."
    )
    weight_source: Literal["frequency", "loss"] = Field(
        "frequency", description="weighted: weights count^-alpha (frequency) or running_loss^beta (loss)."
    )
    alpha: float = Field(0.5, ge=0.0, description="weighted, frequency: the exponent of count^-alpha.")
    beta: float = Field(1.0, ge=0.0, description="weighted, loss: the exponent of running_loss^beta.")
    loss_momentum: float = Field(
        0.5, ge=0.0, lt=1.0, description="weighted, loss: EMA momentum of the running per-connective loss."
    )
    boost: float = Field(
        4.0, ge=1.0, description="structural: how much likelier verse- and clause-initial occurrences are."
    )
    q: float = Field(
        0.5, ge=0.0, le=1.0, description="chain: probability of masking all connectives of a verse together."
    )
    aux_weight: float = Field(0.0, ge=0.0, description="contrastive: weight of the connective-class head's loss.")
    inventory: str | None = Field(None, description="A connectives TOML; none = the one shipped with assay.")

    @model_validator(mode="after")
    def _check(self) -> ConnectiveStage:
        if self.strategy == "contrastive" and self.aux_weight <= 0:
            raise ValueError("strategy 'contrastive' needs aux_weight > 0 (the class head's loss weight)")
        return self


class ConnectiveMaskingConfig(MaskingConfig):
    """A curriculum of connective stages only (they need the annotated corpus of the task)."""

    stages: list[ConnectiveStage] = Field(
        default_factory=lambda: [ConnectiveStage()],
        min_length=1,
        description="The curriculum: connective stages only (they need the task's annotated corpus).",
    )


class ConnectiveTrainingConfig(TrainingConfig):
    """A training run whose masking targets connectives (`[masking] stages = [{kind = "connectives",
    ...}]`): the objective "connectives" of `ConnectiveTask`."""

    masking: ConnectiveMaskingConfig = Field(default_factory=ConnectiveMaskingConfig)

    @property
    def objective(self) -> str:
        return "connectives"


def _kjv_data() -> DataConfig:
    return DataConfig(
        corpus="kjv",
        split="named",
        val_documents=list(VAL_BOOKS),
        test_documents=list(TEST_BOOKS),
        tokenizer="bpe",
        bpe_vocab_size=4096,
        block_size=128,
    )


class ExperimentSection(Section):
    out_dir: str = "runs/connectives_kjv"
    seeds: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    only: list[str] | None = None  # train/evaluate only these strategies (the table uses all finished)
    eval_batch_size: int = Field(64, ge=1)


class ConnectivesExperimentConfig(Section):
    experiment: ExperimentSection = Field(default_factory=ExperimentSection)
    strategies: dict[str, ConnectiveStage]
    run: RunConfig = Field(default_factory=RunConfig)  # device and threads; out_dir and seed are per run
    data: DataConfig = Field(default_factory=_kjv_data)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _check(self) -> ConnectivesExperimentConfig:
        if not any(s.strategy == "random" for s in self.strategies.values()):
            raise ValueError("strategies need a baseline: one with strategy = 'random'")
        rates = {s.rate for s in self.strategies.values()}
        if len(rates) > 1:
            raise ValueError(f"every strategy must mask the same overall rate (same compute), got {sorted(rates)}")
        ps = {s.p for s in self.strategies.values() if s.strategy != "random"}
        if len(ps) > 1:
            raise ValueError(f"every targeted strategy must use the same p, got {sorted(ps)}")
        if self.data.split != "named" or not self.data.test_documents:
            raise ValueError("the experiment needs held-out test books: data.split = 'named' with data.test_documents")
        unknown = set(self.experiment.only or []) - set(self.strategies)
        if unknown:
            raise ValueError(f"experiment.only names unknown strategies {sorted(unknown)}")
        return self

    def run_config(self, name: str, seed: int, tokenizer_path: str | None) -> ConnectiveTrainingConfig:
        tree = {
            "run": to_dict(self.run) | {"out_dir": str(run_dir(self, name, seed)), "seed": seed},
            "data": to_dict(self.data) | {"tokenizer_path": tokenizer_path},
            "model": to_dict(self.model),
            "masking": {"stages": [to_dict(self.strategies[name])], "patience": 1_000_000},
            "train": to_dict(self.train),
        }
        return validate(ConnectiveTrainingConfig, tree)


def run_dir(cfg: ConnectivesExperimentConfig, name: str, seed: int) -> Path:
    return Path(cfg.experiment.out_dir) / name / f"seed-{seed}"
