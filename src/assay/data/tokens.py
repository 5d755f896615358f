"""A corpus, tokenised once and cached as flat uint16/uint32 memmaps (one per split).

The cache key covers everything that changes the tokens: the corpus content, the split, the
document separator and the tokenizer's vocabulary. Files are written atomically, so two processes
(e.g. two torchrun ranks) preparing the same data at once both end up with a complete cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assay.data.config import DataConfig
from assay.data.corpus import load_corpus, named_split, split_corpus
from assay.data.tokenizer import Tokenizer, build_tokenizer
from assay.errors import DataError
from assay.io import atomic_write, atomic_write_json


def default_cache_dir() -> Path:
    env = os.environ.get("ASSAY_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "assay"


@dataclass
class TokenSplits:
    tokenizer: Tokenizer
    train: np.ndarray  # (N_train,) token ids, memmapped
    val: np.ndarray  # (N_val,)
    chars: dict[str, int]  # characters per split, for bits per character

    def chars_per_token(self, split: str) -> float:
        n_tokens = len(self.train if split == "train" else self.val)
        return self.chars[split] / max(n_tokens, 1)


def split_texts(cfg: DataConfig, test: bool = False):
    """(corpus, training documents, {split: text}) with each split's documents joined by
    `doc_separator`, exactly as they are tokenised; with `test`, also the held-out test text of a
    named split (read only by final evaluations)."""
    corpus = load_corpus(cfg.corpus, cfg.text_field)
    if cfg.split == "named":
        train_docs, val_docs, test_docs = named_split(corpus, cfg.val_documents, cfg.test_documents)
    else:
        train_docs, val_docs = split_corpus(corpus, cfg.val_fraction, cfg.split)
        test_docs = []
    if not val_docs or not train_docs:
        raise DataError(f"corpus {cfg.corpus!r} is too small to split with val_fraction={cfg.val_fraction}")
    texts = {
        "train": cfg.doc_separator.join(d.text for d in train_docs),
        "val": cfg.doc_separator.join(d.text for d in val_docs),
    }
    if test:
        if not test_docs:
            raise DataError("no test documents: set data.split = 'named' and data.test_documents")
        texts["test"] = cfg.doc_separator.join(d.text for d in test_docs)
    return corpus, train_docs, texts


def prepare_tokens(cfg: DataConfig, tokenizer: Tokenizer | None = None) -> TokenSplits:
    """Load the corpus, split it, build (or reuse) the tokenizer and return cached token arrays."""
    corpus, train_docs, texts = split_texts(cfg)
    if tokenizer is None:
        # A char vocabulary covers the whole corpus (as nanoGPT's 65 characters do); a BPE is
        # learned from the training split only.
        source = [d.text for d in corpus.documents] if cfg.tokenizer == "char" else [d.text for d in train_docs]
        tokenizer = build_tokenizer(cfg.tokenizer, source, cfg.bpe_vocab_size, cfg.tokenizer_path)

    key = hashlib.sha256(
        json.dumps(
            [
                corpus.digest(),
                cfg.split,
                cfg.val_fraction,
                cfg.val_documents,
                cfg.test_documents,
                cfg.doc_separator,
                tokenizer.fingerprint(),
            ]
        ).encode()
    ).hexdigest()[:24]
    folder = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    folder = folder / "tokens" / key
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    arrays = {}
    for split, text in texts.items():
        path = folder / f"{split}.bin"
        if not path.exists():
            ids = tokenizer.encode_array(text).astype(dtype)
            atomic_write(path, ids.tofile)
        arrays[split] = np.memmap(path, dtype=dtype, mode="r")
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        atomic_write_json(
            meta_path,
            {"corpus": cfg.corpus, "vocab_size": tokenizer.vocab_size, "dtype": np.dtype(dtype).name}
            | {f"{s}_tokens": len(a) for s, a in arrays.items()}
            | {f"{s}_chars": len(t) for s, t in texts.items()},
        )
    return TokenSplits(tokenizer, arrays["train"], arrays["val"], {s: len(t) for s, t in texts.items()})
