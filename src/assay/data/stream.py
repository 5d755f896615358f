"""A filesystem stream of training shards: producers write, a trainer consumes.

Layout of a stream folder:

    meta.json      the batch schema (field names, dtypes, per-sample shapes), vocab, mode, seed,
                   shard size, the number of train shards if finite, the producing config
    tokenizer/     the tokenizer the token ids belong to
    val/           fixed validation shards (written first, never deleted)
    train/         training shards, `{unix_ms}-{seq:06d}-{n}.safetensors` (n samples)
    cursor.json    the consumer's position: `read` (next shard it will read) and `keep` (the
                   oldest shard a checkpoint may still need)

Shards are safetensors files written under a hidden temporary name and renamed into place, so a
reader never sees a partial shard. Shard `seq` is a pure function of (seed, split, seq): any
worker can make any shard, several workers split the sequence (`seq % workers`), and a lost
shard can be made again byte for byte. A producer sleeps while `seq >= read + max_backlog`, so
at most `max_backlog` shards wait unread, and the shard the reader needs next is always allowed.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from assay.errors import DataError
from assay.io import JSON_MAX, atomic_write, atomic_write_json, check_size

SHARD_RE = re.compile(r"^(?P<ts>\d+)-(?P<seq>\d{6,})-(?P<n>\d+)\.safetensors$")
FORMAT = 1


# -- shards -------------------------------------------------------------------------------------
def write_shard(folder: Path, seq: int, tensors: dict[str, torch.Tensor]) -> Path:
    """Atomically publish one shard; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(tensors.values())))
    final = folder / f"{int(time.time() * 1000)}-{seq:06d}-{n}.safetensors"
    # atomic_write: a unique temporary name, the usual permissions, fsync of the file and the folder
    atomic_write(final, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, tmp))
    return final


def list_shards(folder: Path) -> dict[int, Path]:
    """Published shards by sequence number (temporary files are invisible here)."""
    out: dict[int, Path] = {}
    if folder.is_dir():
        for entry in os.scandir(folder):
            m = SHARD_RE.match(entry.name)
            if m:
                out[int(m["seq"])] = Path(entry.path)
    return out


def load_shard(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"shard {path} is unreadable ({exc})") from None


# -- meta and cursor ----------------------------------------------------------------------------
def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    atomic_write_json(folder / "meta.json", {"format": FORMAT} | meta)


def read_meta(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise DataError(f"{folder} is not a stream folder (no meta.json)")
    try:
        meta = json.loads(check_size(path, JSON_MAX, "a stream's meta.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"{path} is corrupt") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path} is corrupt")
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: unknown stream format {meta.get('format')!r}")
    return meta


def schema_of(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """Field -> dtype and per-sample shape, for meta.json."""
    return {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape[1:])} for k, v in tensors.items()}


def read_cursor(folder: Path) -> dict[str, int]:
    try:
        cursor = json.loads((folder / "cursor.json").read_text(encoding="utf-8"))
        return {"read": int(cursor["read"]), "keep": int(cursor["keep"])}
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return {"read": 0, "keep": 0}


# -- producing ----------------------------------------------------------------------------------
def produce(
    folder: Path,
    make_shard: Callable[[int], dict[str, torch.Tensor]],
    seqs: Iterator[int] | range,
    max_backlog: int | None,
    poll: float = 0.05,
    should_stop: Callable[[], bool] = lambda: False,
    on_shard: Callable[[int, Path], None] | None = None,
    on_wait: Callable[[int], None] | None = None,
) -> int:
    """Write shards `seqs` into `folder/train`, sleeping while the backlog is full.

    Returns the number of shards written. Shards that already exist are skipped (a restarted
    producer resumes where the stream stands).
    """
    train = folder / "train"
    written = 0
    for seq in seqs:
        if seq in list_shards(train) or seq < read_cursor(folder)["keep"]:
            continue
        while max_backlog is not None and seq >= read_cursor(folder)["read"] + max_backlog:
            if should_stop():
                return written
            if on_wait is not None:
                on_wait(seq)
            time.sleep(poll)
        if should_stop():
            return written
        path = write_shard(train, seq, make_shard(seq))
        written += 1
        if on_shard is not None:
            on_shard(seq, path)
    return written


# -- consuming ----------------------------------------------------------------------------------
class ShardReader:
    """Reads `train/` shards strictly in sequence order.

    Waits for a shard that is not there yet (a producer may still be writing); a finite stream
    (`meta["train_shards"]` set) wraps around when `repeat` is on. With `delete`, shards before
    `keep` are removed: `keep` follows `read` unless `track_keep` is set, in which case a trainer
    moves it with `mark_keep()` when it saves a checkpoint, so a resumed run still finds its shard.
    Only the reader with `owner=True` (rank 0) writes cursor.json and deletes.
    """

    def __init__(
        self,
        folder: str | Path,
        delete: bool = False,
        repeat: bool = True,
        timeout: float | None = 600.0,
        poll: float = 0.02,
        track_keep: bool = False,
        owner: bool = True,
    ):
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        self.total = self.meta.get("train_shards")
        if delete and self.total is not None and repeat:
            raise DataError("a finite stream read repeatedly cannot delete its shards (set stream_delete = false)")
        self.delete, self.repeat, self.timeout, self.poll = delete, repeat, timeout, poll
        self.track_keep, self.owner = track_keep, owner
        self.seq = 0  # shards read so far; the file read next is seq % total when repeating
        self.keep = 0

    @property
    def exhausted(self) -> bool:
        return self.total is not None and not self.repeat and self.seq >= self.total

    def read(self) -> dict[str, torch.Tensor]:
        """The next shard's tensors (waits for it if a producer has not written it yet)."""
        if self.exhausted:
            raise DataError(f"stream {self.folder} ended after {self.total} shards")
        want = self.seq % self.total if self.total else self.seq
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while (path := list_shards(self.folder / "train").get(want)) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise DataError(
                    f"waited {self.timeout:.0f} s for shard {want} in {self.folder}: is a producer running?"
                )
            time.sleep(self.poll)
        tensors = load_shard(path)
        self.seq += 1
        if not self.track_keep:
            self.keep = self.seq
        self._sync()
        return tensors

    def mark_keep(self, seq: int) -> None:
        """Shards before `seq` are no longer needed (a checkpoint points at `seq` or later)."""
        self.keep = seq
        self._sync()

    def _sync(self) -> None:
        if not self.owner:
            return
        if self.total is not None and self.repeat:  # every file is needed again next epoch
            atomic_write_json(self.folder / "cursor.json", {"read": min(self.seq, self.total), "keep": 0})
            return
        atomic_write_json(self.folder / "cursor.json", {"read": self.seq, "keep": self.keep})
        if self.delete:
            for seq, path in list_shards(self.folder / "train").items():
                if seq < self.keep:
                    path.unlink(missing_ok=True)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while not self.exhausted:
            yield self.read()


def wait_for_stream(folder: str | Path, timeout: float = 600.0, poll: float = 0.1) -> dict[str, Any]:
    """The stream's meta once the producer has written it and all its validation shards."""
    folder = Path(folder)
    deadline = time.monotonic() + timeout
    while True:
        if (folder / "meta.json").exists():
            meta = read_meta(folder)
            if len(list_shards(folder / "val")) >= meta["val_shards"]:
                return meta
        if time.monotonic() > deadline:
            raise DataError(f"no complete stream in {folder} after {timeout:.0f} s: run `assay data produce` for it")
        time.sleep(poll)


def load_val(folder: str | Path) -> dict[str, torch.Tensor]:
    """All validation shards of a stream, concatenated in order."""
    shards = list_shards(Path(folder) / "val")
    expected = read_meta(folder).get("val_shards", len(shards))
    if len(shards) < expected or sorted(shards) != list(range(len(shards))):
        raise DataError(f"{folder}/val holds {len(shards)} of {expected} validation shards")
    parts = [load_shard(shards[s]) for s in sorted(shards)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
