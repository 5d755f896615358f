"""The config of a training run: one typed section per concern."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from assay.config import Section
from assay.data.config import DataConfig, StreamConfig
from assay.masking.config import MaskingConfig
from assay.model.config import ModelConfig


class RunConfig(Section):
    out_dir: str = "runs/default"
    seed: int = 1337
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)  # torch intra-op threads (default: torch's choice)


class TrainConfig(Section):
    max_iters: int = Field(2000, ge=1)  # optimizer steps
    batch_size: int = Field(32, ge=1)  # sequences per micro-batch (per rank)
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step
    lr: float = Field(1e-3, gt=0.0)
    min_lr: float = Field(1e-4, ge=0.0)
    warmup_iters: int = Field(100, ge=0)
    lr_decay_iters: int | None = Field(None, ge=1)  # end of the cosine; default max_iters
    weight_decay: float = Field(0.1, ge=0.0)
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.99, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(1.0, gt=0.0)  # max global grad norm; none = off
    eval_interval: int = Field(250, ge=1)
    eval_blocks: int | None = Field(128, ge=1)  # validation blocks per evaluation; none = all
    elbo_points: int = Field(16, ge=1)  # t-grid size of the masked-diffusion ELBO
    elbo_every_eval: bool = False  # ELBO at every evaluation (else only at the end)
    log_interval: int = Field(10, ge=1)
    dtype: Literal["float32", "bfloat16"] = "float32"  # bfloat16 = autocast
    # EMA of the weights (e.g. 0.999), used for evaluation and saved as the checkpoint's weights
    ema_decay: float | None = Field(None, gt=0.0, lt=1.0)
    compile: bool = False  # torch.compile; falls back to eager with a warning if it fails
    plot: bool = True  # loss-curve PNG beside metrics.jsonl
    unfreeze_at_iter: int | None = Field(None, ge=0)  # with model.freeze_transformer: fine-tune all from here
    # token_classifier: "balanced" weights classes by n / (C * count) over the training data, once
    class_weighting: Literal["none", "balanced"] = "none"
    baseline: bool = True  # judges: also evaluate the LM-likelihood baseline at the end

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        return self


class TrainingConfig(Section):
    run: RunConfig = Field(default_factory=RunConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)  # read by `assay data produce`

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if self.model.mode != "language_model" and not self.data.stream:
            raise ValueError(
                f"model.mode {self.model.mode!r} trains from a synthetic stream: set data.stream "
                "(make one with `assay data produce`)"
            )
        if self.train.unfreeze_at_iter is not None and not self.model.freeze_transformer:
            raise ValueError("train.unfreeze_at_iter needs model.freeze_transformer = true")
        return self

    @property
    def objective(self) -> str:
        """The name of what this config trains: diffusion | autoregressive (language models),
        token_classification | sequence_scoring (judges), or a task's own (train/task.py)."""
        return objective_for_model(self.model.mode, self.model.attention)


def objective_for_model(mode: str, attention: str) -> str:
    """The objective a model's head and attention imply."""
    if mode == "token_classifier":
        return "token_classification"
    if mode == "sequence_scorer":
        return "sequence_scoring"
    return "autoregressive" if attention == "causal" else "diffusion"
