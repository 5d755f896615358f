"""Two tokenizers behind one interface: character-level and BPE (HF `tokenizers`).

Both end with four dedicated special tokens appended after the base vocabulary, so no special id
ever collides with a real character or word piece:

    [PAD] [MASK] [CLS] [UNK]

A tokenizer is saved into a directory (a checkpoint's `tokenizer/`) as `tokenizer_config.json`
(its kind) plus `vocab.json` (char) or a standard HF `tokenizer.json` (BPE).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from assay.errors import DataError
from assay.io import atomic_write_text

SPECIAL_TOKENS = ("[PAD]", "[MASK]", "[CLS]", "[UNK]")


class Tokenizer(ABC):
    kind: str

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def token_to_id(self, token: str) -> int | None: ...

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and, per token, the (start, end) character span it covers in `text`."""

    @abstractmethod
    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str: ...

    @abstractmethod
    def _save_files(self, directory: Path) -> None: ...

    @property
    @abstractmethod
    def special_ids(self) -> list[int]:
        """Every id that is not text: the four assay specials and any the base vocab declares."""

    @property
    def pad_id(self) -> int:
        return self._special("[PAD]")

    @property
    def mask_id(self) -> int:
        return self._special("[MASK]")

    @property
    def cls_id(self) -> int:
        return self._special("[CLS]")

    @property
    def unk_id(self) -> int:
        return self._special("[UNK]")

    def _special(self, token: str) -> int:
        idx = self.token_to_id(token)
        assert idx is not None, f"{token} missing from the vocabulary"
        return idx

    def encode_array(self, text: str) -> np.ndarray:
        """Token ids of a (possibly very long) text as an int64 array."""
        return np.asarray(self.encode(text), dtype=np.int64)

    def encode_array_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """`encode_array(text)` and the (N, 2) character spans of its tokens."""
        ids, offsets = self.encode_with_offsets(text)
        return np.asarray(ids, dtype=np.int64), np.asarray(offsets, dtype=np.int64).reshape(-1, 2)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_files(directory)
        atomic_write_text(directory / "tokenizer_config.json", json.dumps({"kind": self.kind}) + "\n")

    def fingerprint(self) -> str:
        """Hash of the vocabulary/merges: part of every token-cache key."""
        return hashlib.sha256(self._serialise().encode("utf-8")).hexdigest()

    @abstractmethod
    def _serialise(self) -> str: ...


class CharTokenizer(Tokenizer):
    """One id per character (sorted by code point), then the specials. Unknown characters -> [UNK]."""

    kind = "char"

    def __init__(self, chars: Sequence[str]):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise DataError("a char vocabulary must be a list of distinct single characters")
        self.chars = list(chars)
        self._itos = self.chars + list(SPECIAL_TOKENS)
        self._stoi = {s: i for i, s in enumerate(self._itos)}
        self._char_to_id = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    @property
    def special_ids(self) -> list[int]:
        return list(range(len(self.chars), len(self._itos)))

    def token_to_id(self, token: str) -> int | None:
        return self._stoi.get(token)

    def encode(self, text: str) -> list[int]:
        unk = self.unk_id
        return [self._char_to_id.get(c, unk) for c in text]

    def encode_array(self, text: str) -> np.ndarray:
        # Vectorised: map each distinct code point once instead of every character.
        codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        uniq, inverse = np.unique(codepoints, return_inverse=True)
        unk = self.unk_id
        table = np.array([self._char_to_id.get(chr(int(c)), unk) for c in uniq], dtype=np.int64)
        return table[inverse] if len(uniq) else np.zeros(0, dtype=np.int64)

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        return self.encode(text), [(i, i + 1) for i in range(len(text))]

    def encode_array_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        ids = self.encode_array(text)
        positions = np.arange(len(ids), dtype=np.int64)
        return ids, np.stack([positions, positions + 1], axis=1)

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        n_chars = len(self.chars)
        out = []
        for i in ids:
            i = int(i)
            if i < n_chars:
                out.append(self.chars[i])
            elif not skip_special and i < len(self._itos):
                out.append(self._itos[i])
        return "".join(out)

    def _serialise(self) -> str:
        return json.dumps({"chars": self.chars, "specials": list(SPECIAL_TOKENS)}, ensure_ascii=False)

    def _save_files(self, directory: Path) -> None:
        atomic_write_text(directory / "vocab.json", self._serialise() + "\n")


class BPETokenizer(Tokenizer):
    """Byte-level BPE from HF `tokenizers`; the assay specials are added after the learned vocab."""

    kind = "bpe"

    def __init__(self, hf_tokenizer):
        missing = [t for t in SPECIAL_TOKENS if hf_tokenizer.token_to_id(t) is None]
        if missing:
            hf_tokenizer.add_special_tokens(missing)  # appended at the end of the vocabulary
        self.hf = hf_tokenizer
        self._special_ids = sorted(
            {i for i, tok in hf_tokenizer.get_added_tokens_decoder().items() if tok.special}
            | {hf_tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
        )

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, processors, trainers

        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        hf.post_processor = processors.ByteLevel(trim_offsets=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if vocab_size <= len(alphabet) + len(SPECIAL_TOKENS):
            raise DataError(f"bpe vocab_size must exceed {len(alphabet) + len(SPECIAL_TOKENS)}, got {vocab_size}")
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - len(SPECIAL_TOKENS),
            initial_alphabet=alphabet,
            special_tokens=[],
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer)
        return cls(hf)

    @classmethod
    def from_file(cls, path: str | Path) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        try:
            return cls(HFTokenizer.from_file(str(path)))
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise DataError(f"cannot load tokenizer {path}: {str(exc).splitlines()[0]}") from None

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    @property
    def special_ids(self) -> list[int]:
        return list(self._special_ids)

    def token_to_id(self, token: str) -> int | None:
        return self.hf.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_array(self, text: str) -> np.ndarray:
        return self.encode_array_with_offsets(text)[0]

    def encode_array_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        # Encode ~64k-character pieces as a batch: much faster than one huge string, same ids.
        chunks = _chunks(text)
        encoded = self.hf.encode_batch(chunks, add_special_tokens=False)
        if not encoded:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.int64)
        bases = np.cumsum([0] + [len(c) for c in chunks[:-1]])
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encoded])
        offsets = np.concatenate(
            [
                np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2) + base
                for e, base in zip(encoded, bases, strict=True)
            ]
        )
        return ids, offsets

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.hf.encode(text, add_special_tokens=False)
        return enc.ids, [tuple(o) for o in enc.offsets]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    def _serialise(self) -> str:
        return self.hf.to_str()

    def _save_files(self, directory: Path) -> None:
        atomic_write_text(directory / "tokenizer.json", self._serialise())


def _chunks(text: str, size: int = 1 << 16) -> list[str]:
    """Split text into pieces of ~size characters, each cut just after a newline that is followed
    by a non-space character: the byte-level pre-tokenizer always ends a pre-token there."""
    out, start = [], 0
    while start < len(text):
        end = text.find("\n", start + size)
        while end != -1 and end + 1 < len(text) and text[end + 1].isspace():
            end = text.find("\n", end + 1)
        end = len(text) if end == -1 else end + 1
        out.append(text[start:end])
        start = end
    return out


def load_tokenizer(directory: str | Path) -> Tokenizer:
    directory = Path(directory)
    config_path = directory / "tokenizer_config.json"
    try:
        kind = json.loads(config_path.read_text(encoding="utf-8"))["kind"]
    except FileNotFoundError:
        raise DataError(f"no tokenizer in {directory} (tokenizer_config.json missing)") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise DataError(f"{config_path} is corrupt") from None
    if kind == "char":
        try:
            vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
            return CharTokenizer(vocab["chars"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{directory / 'vocab.json'} is missing or corrupt") from None
    if kind == "bpe":
        return BPETokenizer.from_file(directory / "tokenizer.json")
    raise DataError(f"{config_path}: unknown tokenizer kind {kind!r}")


def build_tokenizer(kind: str, texts: list[str], vocab_size: int = 4096, path: str | None = None) -> Tokenizer:
    """A char tokenizer built from `texts`, a BPE trained on them, or (path given) a loaded BPE."""
    if path is not None:
        if kind != "bpe":
            raise DataError("data.tokenizer_path is only used with data.tokenizer = 'bpe'")
        if not Path(path).is_file():
            raise DataError(f"tokenizer file not found: {path}")
        return BPETokenizer.from_file(path)
    if kind == "char":
        return CharTokenizer.train(texts)
    if kind == "bpe":
        return BPETokenizer.train(texts, vocab_size)
    raise DataError(f"unknown tokenizer {kind!r} (use 'char' or 'bpe')")
