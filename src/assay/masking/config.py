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

    kind: Literal["bert"] = Field("bert", description="The strategy.")
    rate: Rate = Field(0.15, description="Share of the maskable tokens selected.")
    mask_frac: float = Field(0.8, ge=0.0, le=1.0, description="Share of the selected tokens that become [MASK].")
    random_frac: float = Field(0.1, ge=0.0, le=1.0, description="Share of the selected tokens replaced at random.")


class RandomStage(_Stage):
    """Each token independently masked with the sample's rate (drawn per sample from a range)."""

    kind: Literal["random"] = Field("random", description="The strategy.")
    rate: Rate = Field((0.0, 1.0), description="Masking rate, or a [low, high] range it is drawn from per sample.")
    # Low-discrepancy rates across the batch (MDLM): (u + i/B) mod 1 instead of B independent
    # draws; same distribution per sample, lower-variance batch gradients.
    stratified: bool = Field(
        False, description="Stratified rates across the batch (MDLM): lower-variance gradients, same distribution."
    )


class StickyStage(_Stage):
    """Clustered masks: exactly K = ceil(rate * T) tokens, grown in rounds (p2 next to a mask, else p1)."""

    kind: Literal["sticky"] = Field("sticky", description="The strategy.")
    rate: Rate = Field(0.4, description="Masking rate (or a [low, high] range): K = ceil(rate * T) tokens.")
    p1: float = Field(
        0.15, gt=0.0, le=1.0, description="Per-round probability of masking a token with no masked neighbour."
    )
    p2: float = Field(0.5, ge=0.0, le=1.0, description="Per-round probability of masking a token next to a mask.")


class SpanStage(_Stage):
    """Exactly K = ceil(rate * T) tokens masked as `n_spans` non-overlapping, non-adjacent spans."""

    kind: Literal["span"] = Field("span", description="The strategy.")
    rate: Rate = Field(0.3, description="Masking rate (or a [low, high] range): K = ceil(rate * T) tokens.")
    n_spans: int = Field(4, ge=1, description="Spans the K masked tokens form.")


Stage = Annotated[BertStage | RandomStage | StickyStage | SpanStage, Field(discriminator="kind")]


class MaskingConfig(Section):
    """A curriculum of masking stages. Training moves to the next stage when the validation loss
    of the current one has not improved (by more than `min_delta`) for `patience` evaluations;
    the last stage stays."""

    stages: list[Stage] = Field(
        default_factory=lambda: [RandomStage()],
        min_length=1,
        description="The curriculum: masking stages in order, each a table with a kind (below).",
    )
    patience: int = Field(3, ge=1, description="Evaluations without improvement before the next stage.")
    min_delta: float = Field(
        0.0, ge=0.0, description="A smaller drop of the stage's validation loss is no improvement."
    )
    # How masked tokens are averaged into the loss. "mean": plain mean over all masked tokens of
    # the batch (a sample with rate t counts ~t*T times). "elbo": each token weighted by
    # 1 / (t * T) of its sample, the masked-diffusion ELBO (MDLM), so every sample counts once.
    loss: Literal["mean", "elbo"] = Field(
        "mean", description="mean: over the batch's masked tokens; elbo: weighted 1/(t*T), each sample counts once."
    )
