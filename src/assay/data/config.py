"""Where text comes from and how it becomes tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from assay.config import Section


class DataConfig(Section):
    # A shipped corpus ('tinyshakespeare', 'shakespeare') or a path: .txt, folder of .txt, .jsonl
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
