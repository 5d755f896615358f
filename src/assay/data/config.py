"""Where text comes from and how it becomes tokens ([data]), and how a stream of training shards is
produced ([stream], read by `assay data produce`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from assay.config import Section


class DataConfig(Section):
    # A shipped corpus ('tinyshakespeare', 'shakespeare', 'kjv', 'heldout') or a path: .txt, folder of .txt, .jsonl
    corpus: str = "tinyshakespeare"
    text_field: str = "text"  # JSONL field holding the text
    split: Literal["contiguous", "documents", "named"] = "contiguous"
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    # split = "named": whole documents (e.g. Bible books) for validation, and for a test set that
    # training and validation never see
    val_documents: list[str] | None = None
    test_documents: list[str] | None = None
    doc_separator: str = "\n\n"  # joins documents of one split before tokenising
    tokenizer: Literal["char", "bpe"] = "char"
    tokenizer_path: str | None = None  # an HF tokenizer.json to load instead of training a BPE
    bpe_vocab_size: int = Field(4096, ge=300, le=1 << 20)
    block_size: int = Field(256, ge=8)  # tokens per training sequence
    cache_dir: str | None = None  # tokenised-corpus cache; default $ASSAY_CACHE_DIR or ~/.cache/assay
    # Train from a stream folder (`assay data produce`) instead of the corpus: batches, tokenizer
    # and block size come from the stream. Judges (token_classifier, sequence_scorer) need one.
    stream: str | None = None
    stream_delete: bool = False  # delete shards a checkpoint no longer needs (infinite streams)
    stream_timeout: float = Field(600.0, gt=0.0)  # seconds to wait for a shard before giving up


class StreamConfig(Section):
    """Producer settings. The corpus, split and block size come from [data]; masks from [masking]
    (each shard spreads its samples evenly over the masking stages)."""

    # masked_lm: masked-LM batches (idx, targets). synthetic: real text whose masks a trained
    # masked-diffusion LM filled in (idx, token_labels, score, rate, ...), for judges.
    provider: Literal["masked_lm", "synthetic"] = "masked_lm"
    shard_size: int = Field(64, ge=1)  # samples per shard
    val_shards: int = Field(4, ge=1)  # fixed validation shards, from the validation split
    max_backlog: int | None = Field(16, ge=1)  # unread train shards allowed; none = no limit
    # synthetic only ------------------------------------------------------------------------------
    lm: str | None = None  # run or checkpoint folder of the masked-diffusion LM that fills masks
    steps: int = Field(1, ge=1)  # denoising passes of the filling LM (1: all masks at once)
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    random_frac: float = Field(0.0, ge=0.0, le=1.0)  # > 0: also corrupt unmasked tokens at random (class 2)
    cls: bool = True  # prepend [CLS] (a sequence scorer reads it)

    @model_validator(mode="after")
    def _check(self) -> StreamConfig:
        if self.provider == "synthetic" and not self.lm:
            raise ValueError("stream.lm (a masked-diffusion LM run) is required for provider 'synthetic'")
        return self
