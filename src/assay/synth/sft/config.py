"""`SFTConfig`: every option of `assay synth train-sft`, one section per concern (TOML, `--set`)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from assay.config import Section
from assay.tracking import TrackingSettings

# Every linear layer of a Llama-style block: attention and MLP.
LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class SFTDataConfig(Section):
    train: str | None = Field(None, description="SFT-Train.jsonl (rows of `assay synth configs`/`score`).")
    val: str | None = Field(None, description="SFT-Val.jsonl for the validation loss (none: no validation).")
    prompt_field: str = Field("vibe_noisy", description="Column holding the vibe given to the model.")
    target_field: str = Field("config_payload", description="Column holding the payload to learn.")
    max_seq_len: int = Field(4096, ge=16, description="Longer examples are skipped (and counted).")
    limit: int | None = Field(None, ge=1, description="Use at most this many training examples (file order).")
    val_limit: int | None = Field(16, ge=1, description="Use at most this many validation examples.")


class SFTModelConfig(Section):
    base: str = Field("local/smollm2", description="local/smollm2 or local/PATH (an HF model directory).")


class LoRASection(Section):
    r: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_LINEAR), min_length=1)


class SFTTrainConfig(Section):
    lr: float = Field(2e-4, gt=0)
    min_lr: float = Field(2e-5, ge=0)
    warmup_steps: int = Field(10, ge=0)
    epochs: float = Field(1.0, gt=0, description="Passes over the training rows (when max_steps is none).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; wins over epochs.")
    batch_size: int = Field(1, ge=1, description="Examples per forward pass.")
    grad_accum: int = Field(4, ge=1, description="Forward passes per optimizer step.")
    grad_clip: float = Field(1.0, ge=0, description="Max global gradient norm (0: no clipping).")
    weight_decay: float = Field(0.0, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    gradient_checkpointing: bool = Field(
        False, description="Recompute each layer's activations in backward: ~1/3 more compute, far less memory."
    )
    eval_interval: int = Field(50, ge=1, description="Validation loss every this many steps (and at the end).")
    checkpoint_interval: int = Field(50, ge=1, description="Write checkpoint/ every this many steps (and at the end).")

    @model_validator(mode="after")
    def _lr_order(self):
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) is above lr ({self.lr})")
        return self


class SFTRunConfig(Section):
    out_dir: str = Field("runs/sft", description="Run folder: config, metrics, checkpoint, adapter.")
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch threads (default: $ASSAY_LOCAL_THREADS or torch's).")
    device: str = Field("auto", description="auto (cuda when available), cpu, cuda or cuda:N.")
    bf16: bool = Field(False, description="bf16 autocast on CUDA (weights and AdamW state stay fp32).")
    progress: bool = True

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in {"auto", "cpu", "cuda"} and not (value.startswith("cuda:") and value[5:].isdigit()):
            raise ValueError(f"unknown device {value!r} (auto, cpu, cuda, cuda:N)")
        return value


class SFTConfig(Section):
    data: SFTDataConfig = Field(default_factory=SFTDataConfig)
    model: SFTModelConfig = Field(default_factory=SFTModelConfig)
    lora: LoRASection = Field(default_factory=LoRASection)
    train: SFTTrainConfig = Field(default_factory=SFTTrainConfig)
    run: SFTRunConfig = Field(default_factory=SFTRunConfig)
    log: TrackingSettings = Field(default_factory=TrackingSettings)
