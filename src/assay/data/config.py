"""Where text comes from and how it becomes tokens ([data]), and how a stream of training shards is
produced ([stream], read by `assay data produce`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from assay.config import Section


class DataConfig(Section):
    """The text a run learns from and how it becomes token blocks."""

    corpus: str = Field(
        "tinyshakespeare",
        description="A shipped corpus (tinyshakespeare, shakespeare, kjv, heldout), or a .txt, .jsonl or folder path.",
    )
    text_field: str = Field("text", description="The field holding the text in a .jsonl corpus.")
    split: Literal["contiguous", "documents", "named"] = Field(
        "contiguous",
        description="Validation: the last val_fraction of the text, whole documents (hashed), or named documents.",
    )
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="Share of the corpus held out for validation.")
    val_documents: list[str] | None = Field(
        None, description="split = named: the documents (e.g. Bible books) held out for validation."
    )
    test_documents: list[str] | None = Field(
        None, description="split = named: documents that training and validation never see (a test set)."
    )
    doc_separator: str = Field("\n\n", description="Joins the documents of one split before tokenising.")
    tokenizer: Literal["char", "bpe"] = Field("char", description="char: one token per character; bpe: byte-level BPE.")
    tokenizer_path: str | None = Field(None, description="An HF tokenizer.json to load instead of training a BPE.")
    bpe_vocab_size: int = Field(4096, ge=300, le=1 << 20, description="Vocabulary size of a BPE trained on the corpus.")
    block_size: int = Field(256, ge=8, description="Tokens per training sequence (the model's context).")
    cache_dir: str | None = Field(
        None, description="Tokenised-corpus cache; none = $ASSAY_CACHE_DIR or ~/.cache/assay."
    )
    stream: str | None = Field(
        None,
        description="Train from this stream folder (`assay data produce`) instead of the corpus; judges need one.",
    )
    stream_delete: bool = Field(
        False, description="Delete stream shards no checkpoint needs any more (endless streams)."
    )
    stream_timeout: float = Field(600.0, gt=0.0, description="Seconds to wait for a stream shard before giving up.")


class StreamConfig(Section):
    """Producer settings. The corpus, split and block size come from [data]; masks from [masking]
    (each shard spreads its samples evenly over the masking stages)."""

    provider: Literal["masked_lm", "synthetic"] = Field(
        "masked_lm",
        description="masked_lm: masked-LM batches; synthetic: text a masked-diffusion LM partly rewrote (judges).",
    )
    shard_size: int = Field(64, ge=1, description="Samples per shard.")
    val_shards: int = Field(4, ge=1, description="Fixed validation shards, from the validation split.")
    max_backlog: int | None = Field(
        16, ge=1, description="Unread train shards the producer may run ahead; none = no limit (needs --shards)."
    )
    # synthetic only ------------------------------------------------------------------------------
    lm: str | None = Field(
        None, description="synthetic: the run (or checkpoint) of the masked-diffusion LM that fills masks."
    )
    steps: int = Field(1, ge=1, description="synthetic: denoising passes of the filling LM (1: all masks at once).")
    temperature: float = Field(1.0, ge=0.0, description="synthetic: sampling temperature of the filling LM.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="synthetic: nucleus mass of the filling LM.")
    random_frac: float = Field(
        0.0, ge=0.0, le=1.0, description="synthetic: also corrupt this share of unmasked tokens at random (class 2)."
    )
    cls: bool = Field(True, description="synthetic: prepend [CLS] to every sample (a sequence scorer reads it).")

    @model_validator(mode="after")
    def _check(self) -> StreamConfig:
        if self.provider == "synthetic" and not self.lm:
            raise ValueError("stream.lm (a masked-diffusion LM run) is required for provider 'synthetic'")
        return self
