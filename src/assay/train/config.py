"""The config of a training run: one typed section per concern. Every key carries a one-line
`description`: docs/train.md renders them (assay.train.reference)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from assay.config import Section
from assay.data.config import DataConfig, StreamConfig
from assay.devices import DeviceSpec
from assay.masking.config import MaskingConfig
from assay.model.config import ModelConfig
from assay.tracking import TrackingSettings


class RunConfig(Section):
    """Where a run goes, its seed and where it computes."""

    out_dir: str = Field(
        "runs/default", description="The run folder: best/, last/, metrics.jsonl, loss.png, eval.json, config.json."
    )
    seed: int = Field(1337, description="Seed of every random draw (weights, batches, masks, dropout).")
    device: DeviceSpec = Field(
        "auto", description="auto (a CUDA GPU if torch sees one, else cpu), cpu, cuda, cuda:N or mps."
    )
    threads: int | None = Field(None, ge=1, description="torch intra-op CPU threads; none = torch's choice.")


class TrainConfig(Section):
    """The optimisation: steps, batches, learning-rate schedule, evaluation and precision."""

    max_iters: int = Field(2000, ge=1, description="Optimizer steps of the run (resume with a larger one to go on).")
    batch_size: int = Field(32, ge=1, description="Sequences per micro-batch, per process.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(1e-3, gt=0.0, description="Peak learning rate (AdamW), reached after warmup_iters.")
    min_lr: float = Field(1e-4, ge=0.0, description="Learning rate at the end of the cosine decay.")
    warmup_iters: int = Field(100, ge=0, description="Steps of linear warm-up from 0 to lr.")
    lr_decay_iters: int | None = Field(
        None, ge=1, description="Step where the cosine decay reaches min_lr; none = max_iters."
    )
    weight_decay: float = Field(0.1, ge=0.0, description="AdamW weight decay (matrices only, not norms or biases).")
    beta1: float = Field(0.9, ge=0.0, lt=1.0, description="AdamW beta1.")
    beta2: float = Field(0.99, ge=0.0, lt=1.0, description="AdamW beta2.")
    grad_clip: float | None = Field(
        1.0, gt=0.0, description="Clip the global gradient norm to this; none = no clipping."
    )
    eval_interval: int = Field(250, ge=1, description="Evaluate and save last/ (and best/) every this many steps.")
    eval_blocks: int | None = Field(128, ge=1, description="Validation blocks per evaluation; none = all of them.")
    elbo_points: int = Field(16, ge=1, description="t-grid size of the masked-diffusion ELBO (bits per character).")
    elbo_every_eval: bool = Field(False, description="Compute the ELBO at every evaluation, not only at the end.")
    log_interval: int = Field(10, ge=1, description="Write the training loss to metrics.jsonl every this many steps.")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="bfloat16: autocast the forward pass (weights and optimizer stay float32)."
    )
    ema_decay: float | None = Field(
        None, gt=0.0, lt=1.0, description="EMA of the weights (e.g. 0.999), used to evaluate and saved; none = off."
    )
    compile: bool = Field(False, description="torch.compile the model; falls back to eager with a warning if it fails.")
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="Under torchrun: ddp copies the model to every process; fsdp shards its weights, gradients "
        "and AdamW state (FSDP2). One process trains the plain model with either.",
    )
    plot: bool = Field(True, description="Draw loss.png beside metrics.jsonl at the end of the run.")
    unfreeze_at_iter: int | None = Field(
        None, ge=0, description="With model.freeze_transformer: train the whole model from this step on."
    )
    class_weighting: Literal["none", "balanced"] = Field(
        "none", description="token_classifier: balanced weights class c by n / (C * count_c) over the training data."
    )
    baseline: bool = Field(True, description="Judges: also evaluate the LM-likelihood baseline at the end.")

    @field_validator("class_weighting", mode="before")
    @classmethod
    def _none_is_none(cls, value):
        return "none" if value is None else value  # a config file's "none" is read as None

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        if self.parallel == "fsdp" and self.compile:
            raise ValueError("compile is not supported with parallel = fsdp: set compile = false or parallel = ddp")
        return self


class TrainingConfig(Section):
    """The config of `assay train` (and of `assay data produce`); docs/train.md lists every key."""

    run: RunConfig = Field(default_factory=RunConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)  # read by `assay data produce`
    log: TrackingSettings = Field(default_factory=TrackingSettings)

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
