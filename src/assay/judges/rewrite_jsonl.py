"""The jsonl rewriter: the user's own labelled texts as a judges' stream (`assay judge train
--rewriter jsonl --jsonl FILE`).

One JSON object per line, with `text` and exactly one of:

    {"text": "...", "labels": [0, 0, 1, 1, ...]}      one 0/1 per character of text (1 = machine-written)
    {"text": "...", "spans": [[12, 40], [77, 90]]}     machine-written character ranges [start, end)
    {"text": "...", "score": 0.25}                     the fraction machine-written (no per-character labels)

Characters are Python string positions (Unicode code points). `labels` and `spans` train both
judges; a `score` row trains the sequence scorer only (its tokens are labelled -100, unknown).

Rows go to validation by a hash of their text (sha256; the first `val_fraction` of the hash range,
so duplicated texts stay on one side; at least one row each side), then each split is packed into
one token sequence with the LM's tokenizer, rows joined by the corpus's document separator (whose
tokens are not scored), and cut into windows of block_size - 1 tokens behind [CLS]: fixed,
non-overlapping windows for validation (at most val_shards x shard_size), windows at random
offsets (a pure function of seed and shard number) for training. A token's label is the largest of
its characters' labels; characters the tokenizer does not know are [UNK], never scored. A window's
`score` is the mean over its scored tokens of their label (or of their row's `score`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from assay.errors import ConfigError, DataError
from assay.io import JSONL_MAX, check_size, jsonl_rows
from assay.judges.rewriters import JsonlRewrite, Sources, fingerprint, write_stream
from assay.model.transformer import IGNORE_INDEX
from assay.rng import generator

MODE = "rewrite_jsonl"
KINDS = ("labels", "spans", "score")


@dataclass(frozen=True)
class LabelledText:
    text: str
    labels: np.ndarray | None  # (len(text),) int8 0/1, or None for a score-only row
    score: float | None  # given (score-only rows), else None


def _bad(path: Path, lineno: int, message: str) -> DataError:
    return DataError(f"{path} line {lineno}: {message}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_row(path: Path, lineno: int, row: dict) -> LabelledText:
    """One validated row (a one-line DataError naming the line otherwise)."""
    text = row["text"]
    if not text.strip():
        raise _bad(path, lineno, "the text is empty")
    given = [k for k in KINDS if k in row]
    if len(given) != 1:
        found = f"found {' and '.join(given)}" if given else "found none"
        raise _bad(path, lineno, f"give exactly one of labels, spans or score ({found})")
    kind, value = given[0], row[given[0]]
    if kind == "score":
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            raise _bad(path, lineno, f"score must be a number in [0, 1], not {value!r}")
        return LabelledText(text, None, float(value))
    labels = np.zeros(len(text), dtype=np.int8)
    if kind == "labels":
        if not isinstance(value, list) or len(value) != len(text):
            size = f"{len(value)} items" if isinstance(value, list) else f"a {type(value).__name__}"
            raise _bad(path, lineno, f"labels must hold one 0/1 per character: {size} for {len(text)} characters")
        bad = next((i for i, v in enumerate(value) if not _is_int(v) or v not in (0, 1)), None)
        if bad is not None:
            raise _bad(path, lineno, f"labels[{bad}] is {value[bad]!r}: labels are 0 (written by a person) or 1")
        labels[:] = value
        return LabelledText(text, labels, None)
    if not isinstance(value, list):
        raise _bad(path, lineno, f"spans must be a list of [start, end] pairs, not a {type(value).__name__}")
    for i, span in enumerate(value):
        ok = isinstance(span, list) and len(span) == 2 and all(_is_int(v) for v in span)
        if not ok or not 0 <= span[0] < span[1] <= len(text):
            raise _bad(
                path, lineno, f"spans[{i}] is {span!r}: a span is [start, end] with 0 <= start < end <= {len(text)}"
            )
        labels[span[0] : span[1]] = 1
    return LabelledText(text, labels, None)


def read_labelled(path: str | Path) -> list[LabelledText]:
    """Every row of a labelled JSONL file, validated; at least two rows."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labelled JSONL not found: {path}")
    check_size(path, JSONL_MAX, "a labelled JSONL")
    rows = [parse_row(path, lineno, row) for lineno, row in jsonl_rows(path, "text")]
    if len(rows) < 2:
        raise DataError(f"{path} holds {len(rows)} labelled row(s): at least two are needed (training and validation)")
    return rows


def split_rows(rows: list[LabelledText], val_fraction: float) -> tuple[list[LabelledText], list[LabelledText]]:
    """(train, validation), by sha256 of each text; order kept; at least one row on each side."""
    position = [int(hashlib.sha256(r.text.encode("utf-8")).hexdigest()[:12], 16) / 16**12 for r in rows]
    val = [p < val_fraction for p in position]
    if not any(val):
        val[int(np.argmin(position))] = True
    if all(val):
        val[int(np.argmax(position))] = False
    return [r for r, v in zip(rows, val, strict=True) if not v], [r for r, v in zip(rows, val, strict=True) if v]


@dataclass
class Packed:
    """A split as one token sequence."""

    ids: np.ndarray  # (N,) int64 token ids
    labels: np.ndarray  # (N,) int64: 0/1, IGNORE_INDEX where unknown (score rows, separators, specials)
    value: np.ndarray  # (N,) float64: the label or the row's score; NaN where not scored


def pack(rows: list[LabelledText], tokenizer, separator: str) -> Packed:
    """Rows joined by `separator` and tokenised; per-character labels become per-token ones (a
    token is machine-written if any of its characters is)."""
    parts, values, known = [], [], []
    for i, row in enumerate(rows):
        if i:
            parts.append(separator)
            values.append(np.full(len(separator), np.nan))
            known.append(np.zeros(len(separator), dtype=bool))
        parts.append(row.text)
        if row.labels is not None:
            values.append(row.labels.astype(np.float64))
            known.append(np.ones(len(row.text), dtype=bool))
        else:
            values.append(np.full(len(row.text), row.score))
            known.append(np.zeros(len(row.text), dtype=bool))
    text = "".join(parts)
    char_value, char_known = np.concatenate(values), np.concatenate(known)
    ids, offsets = tokenizer.encode_array_with_offsets(text)
    if len(ids) and (offsets[:, 1] - offsets[:, 0] == 1).all():  # one character per token (char tokenizer)
        value, is_known = char_value[offsets[:, 0]].copy(), char_known[offsets[:, 0]]
    else:
        value, is_known = np.full(len(ids), np.nan), np.zeros(len(ids), dtype=bool)
        for t, (start, end) in enumerate(offsets.tolist()):
            if end > start:
                chunk = char_value[start:end]
                value[t] = np.nan if np.isnan(chunk).all() else np.nanmax(chunk)
                is_known[t] = char_known[start:end].any()
    special = np.isin(ids, np.asarray(tokenizer.special_ids, dtype=ids.dtype))  # [UNK]
    value[special] = np.nan
    labels = np.where(is_known & ~np.isnan(value), np.nan_to_num(value), IGNORE_INDEX).astype(np.int64)
    return Packed(ids, labels, value)


def windows(packed: Packed, starts: np.ndarray, width: int, cls_id: int) -> dict[str, torch.Tensor]:
    """The samples at `starts`: [CLS] + `width` tokens, their labels and scores."""
    index = starts[:, None] + np.arange(width)[None, :]
    ids, labels, value = packed.ids[index], packed.labels[index], packed.value[index]
    scored = ~np.isnan(value)
    score = np.where(scored, value, 0.0).sum(1) / np.maximum(scored.sum(1), 1)
    n = len(starts)
    return {
        "idx": torch.from_numpy(np.concatenate([np.full((n, 1), cls_id), ids], 1)).int(),
        "token_labels": torch.from_numpy(np.concatenate([np.full((n, 1), IGNORE_INDEX), labels], 1)).int(),
        "score": torch.from_numpy(score).float(),
    }


def rewrite_from_jsonl(cfg: JsonlRewrite, src: Sources, out: Path) -> None:
    """The stream of the labelled texts in `cfg.path` (see the module docstring)."""
    if not cfg.path:
        raise ConfigError("the jsonl rewriter needs the labelled texts: --jsonl FILE (rewrite.path)")
    path = Path(cfg.path)
    rows = read_labelled(path)
    train_rows, val_rows = split_rows(rows, cfg.val_fraction)
    separator = src.data.doc_separator
    train, val = pack(train_rows, src.tokenizer, separator), pack(val_rows, src.tokenizer, separator)
    width = cfg.block_size - 1
    for name, split, n_rows in (("training", train, len(train_rows)), ("validation", val, len(val_rows))):
        if len(split.ids) < width:
            raise DataError(
                f"{path}: the {name} rows ({n_rows}) hold {len(split.ids)} tokens, fewer than one sample of "
                f"{width}: add text, or lower rewrite.block_size (--set rewrite.block_size=N)"
            )
    val_starts = np.arange(0, len(val.ids) - width + 1, width)[: cfg.val_shards * cfg.shard_size]
    val_shards = math.ceil(len(val_starts) / cfg.shard_size)
    high = len(train.ids) - width + 1
    cls_id = src.tokenizer.cls_id

    def make_shard(split: str, seq: int) -> dict[str, torch.Tensor]:
        if split == "val":
            return windows(val, val_starts[seq * cfg.shard_size : (seq + 1) * cfg.shard_size], width, cls_id)
        gen = generator(cfg.seed, "shard", split, seq)
        return windows(train, torch.randint(high, (cfg.shard_size,), generator=gen).numpy(), width, cls_id)

    digest = fingerprint(MODE, hashlib.sha256(path.read_bytes()).hexdigest(), cfg.model_dump(exclude={"path"}))
    digest = fingerprint(digest, src.tokenizer.fingerprint(), separator)
    inspectable = bool((train.labels != -100).any())
    write_stream(
        out, make_shard, src=src, cfg=cfg, val_shards=val_shards, mode=MODE, digest=digest,
        extra={"token_labels": inspectable, "source": str(path.resolve())},
    )  # fmt: skip
