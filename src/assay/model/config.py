"""Model hyper-parameters: the trunk's shape and which head sits on it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from assay.config import Section

Mode = Literal["language_model", "token_classifier", "sequence_scorer"]


class ModelConfig(Section):
    """One transformer trunk; `mode` picks the head.

    - `language_model`: vocabulary logits at every position. With `attention = "bidirectional"`
      it is a masked-diffusion ("unmasking") LM; with `"causal"` an autoregressive LM.
    - `token_classifier`: `num_classes` logits per token (the "inspector").
    - `sequence_scorer`: one score in [0, 1] per sequence, read from `[CLS]` or a mean pool
      (the "judge"); pooling "tokens" makes it a multi-task judge: the head scores every token and
      the sequence score is the mean of their probabilities, trained on the sequence target and
      (weight token_loss_weight) on the tokens' labels when the batch has them.
    Classification modes need bidirectional attention; asking for causal is an error.
    """

    mode: Mode = Field(
        "language_model",
        description="The head: language_model (token logits), token_classifier or sequence_scorer (judges).",
    )
    attention: Literal["bidirectional", "causal"] = Field(
        "bidirectional", description="bidirectional: a masked-diffusion LM (or a judge); causal: left to right."
    )
    n_layer: int = Field(4, ge=1, description="Transformer blocks.")
    n_head: int = Field(
        4, ge=1, description="Attention heads per block; the head size n_embd / n_head must be a whole even number."
    )
    n_embd: int = Field(128, ge=8, description="Width of the residual stream.")
    mlp_ratio: int = Field(4, ge=1, description="MLP hidden width = mlp_ratio * n_embd.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability (training only).")
    bias: bool = Field(False, description="Biases in the linear layers and norms.")
    rope_base: float = Field(10000.0, gt=0, description="Base of the rotary position embedding's frequencies.")
    subs: bool = Field(
        False, description="SUBS parameterisation (MDLM): the LM head never predicts special tokens ([MASK] included)."
    )
    special_ids: list[int] = Field(
        default_factory=list, description="Filled in from the tokenizer when a run starts (with subs); not set by hand."
    )
    vocab_size: int | None = Field(
        None, ge=1, description="Filled in from the tokenizer when a run starts; saved with the model config."
    )
    num_classes: int = Field(2, ge=2, description="token_classifier: classes per token.")
    pooling: Literal["cls", "mean", "tokens"] = Field(
        "cls",
        description="sequence_scorer: read [CLS], a mean pool, or (tokens) average per-token scores (multi-task).",
    )
    score_loss: Literal["mse", "bce"] = Field("mse", description="sequence_scorer: loss of the sequence score.")
    token_loss_weight: float = Field(
        1.0, ge=0.0, description="sequence_scorer, pooling = tokens: weight of the per-token label loss."
    )
    init_from: str | None = Field(
        None, description="A run or checkpoint whose trunk weights start this model (heads that differ are skipped)."
    )
    freeze_transformer: bool = Field(False, description="Train the head only (until train.unfreeze_at_iter).")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if (self.n_embd // self.n_head) % 2:
            raise ValueError(f"head size n_embd/n_head = {self.n_embd // self.n_head} must be even for RoPE")
        if self.subs and self.vocab_size is not None and any(not 0 <= i < self.vocab_size for i in self.special_ids):
            raise ValueError(f"special_ids {self.special_ids} out of range for vocab_size {self.vocab_size}")
        if self.mode != "language_model" and self.attention == "causal":
            raise ValueError(f"mode {self.mode!r} needs bidirectional attention, not causal")
        return self

    @property
    def causal(self) -> bool:
        return self.attention == "causal"
