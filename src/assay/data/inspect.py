"""Look at one sample of a stream (`assay data show`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay.data.stream import list_shards, load_shard, read_meta
from assay.data.tokenizer import load_tokenizer
from assay.errors import DataError


def describe_sample(folder: str | Path, split: str, index: int) -> dict[str, Any]:
    folder = Path(folder)
    meta = read_meta(folder)
    if split not in ("val", "train"):
        raise DataError(f"--split must be val or train, not {split!r}")
    shards = list_shards(folder / split)
    size = int(meta["shard_size"])
    seq, row = divmod(index, size)
    if index < 0 or seq not in shards:
        raise DataError(f"{folder}/{split} has no sample {index} ({len(shards)} shards of {size})")
    sample = {k: v[row] for k, v in load_shard(shards[seq]).items()}
    tok = load_tokenizer(folder / "tokenizer")
    out: dict[str, Any] = {
        "split": split,
        "index": index,
        "mode": meta["mode"],
        "text": tok.decode(sample["idx"].tolist()),
    }
    if "original" in sample:
        labels = sample["token_labels"].tolist()
        out["original"] = tok.decode(sample["original"].tolist())
        # the synthetic text with every replaced token in [brackets]
        marked = "".join(
            f"[{tok.decode([t])}]" if label > 0 else tok.decode([t])
            for t, label in zip(sample["idx"].tolist(), labels, strict=True)
            if label != -100
        )
        out |= {"marked": marked, "score": round(float(sample["score"]), 4), "rate": round(float(sample["rate"]), 4)}
    return out
