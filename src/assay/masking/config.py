"""Masking configs: one section per strategy, tagged by `kind`, and the stage curriculum."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from assay.config import Section

# A fixed fraction of the maskable tokens, or a [low, high] range a per-sample rate is drawn from.
Rate = float | tuple[float, float]


class _Stage(Section):
    rate: Rate

    @field_validator("rate")
    @classmethod
    def _check_rate(cls, v: Rate) -> Rate:
        lo, hi = (v, v) if isinstance(v, float | int) else v
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"rate must be in [0, 1] (a range as [low, high] with low <= high), got {v}")
        return v


class BertStage(_Stage):
    """BERT: select `rate` of the tokens; 80% become [MASK], 10% a random token, 10% stay."""

    kind: Literal["bert"] = "bert"
    rate: Rate = 0.15
    mask_frac: float = Field(0.8, ge=0.0, le=1.0)
    random_frac: float = Field(0.1, ge=0.0, le=1.0)


class RandomStage(_Stage):
    """Each token independently masked with the sample's rate (drawn per sample from a range)."""

    kind: Literal["random"] = "random"
    rate: Rate = (0.0, 1.0)
    # Low-discrepancy rates across the batch (MDLM): (u + i/B) mod 1 instead of B independent
    # draws; same distribution per sample, lower-variance batch gradients.
    stratified: bool = False


class StickyStage(_Stage):
    """Clustered masks: exactly K = ceil(rate * T) tokens, grown in rounds (p2 next to a mask, else p1)."""

    kind: Literal["sticky"] = "sticky"
    rate: Rate = 0.4
    p1: float = Field(0.15, gt=0.0, le=1.0)
    p2: float = Field(0.5, ge=0.0, le=1.0)


class SpanStage(_Stage):
    """Exactly K = ceil(rate * T) tokens masked as `n_spans` non-overlapping, non-adjacent spans."""

    kind: Literal["span"] = "span"
    rate: Rate = 0.3
    n_spans: int = Field(4, ge=1)


Stage = Annotated[BertStage | RandomStage | StickyStage | SpanStage, Field(discriminator="kind")]


class MaskingConfig(Section):
    """A curriculum of masking stages. Training moves to the next stage when the validation loss
    of the current one has not improved (by more than `min_delta`) for `patience` evaluations;
    the last stage stays."""

    stages: list[Stage] = Field(default_factory=lambda: [RandomStage()], min_length=1)
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.0, ge=0.0)  # a smaller drop of the stage's val loss is no improvement
    # How masked tokens are averaged into the loss. "mean": plain mean over all masked tokens of
    # the batch (a sample with rate t counts ~t*T times). "elbo": each token weighted by
    # 1 / (t * T) of its sample, the masked-diffusion ELBO (MDLM), so every sample counts once.
    loss: Literal["mean", "elbo"] = "mean"
