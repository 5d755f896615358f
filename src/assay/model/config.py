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
      (the "judge").
    Classification modes need bidirectional attention; asking for causal is an error.
    """

    mode: Mode = "language_model"
    attention: Literal["bidirectional", "causal"] = "bidirectional"
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(128, ge=8)
    mlp_ratio: int = Field(4, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    bias: bool = False
    rope_base: float = Field(10000.0, gt=0)
    # SUBS parameterisation (MDLM): the LM head puts no probability on special tokens ([MASK]
    # included); `special_ids` is filled in from the tokenizer when a run starts.
    subs: bool = False
    special_ids: list[int] = Field(default_factory=list)
    # Filled in from the tokenizer when a run starts; part of the saved model config.
    vocab_size: int | None = Field(None, ge=1)
    # token_classifier
    num_classes: int = Field(2, ge=2)
    # sequence_scorer
    # "tokens": a multi-task judge: the head scores every token and the sequence score is the mean
    # of their probabilities, trained on the sequence target and (weight token_loss_weight) on the
    # tokens' labels when the batch has them
    pooling: Literal["cls", "mean", "tokens"] = "cls"
    score_loss: Literal["mse", "bce"] = "mse"
    token_loss_weight: float = Field(1.0, ge=0.0)
    # transfer learning
    init_from: str | None = None  # a run/checkpoint: its trunk weights start this model (heads that differ are skipped)
    freeze_transformer: bool = False  # train the head only (until train.unfreeze_at_iter)

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
