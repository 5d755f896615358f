"""Training from a stream folder (`data.stream`): batches cut from consecutive shards, the
validation set, and the masked-LM objective on masked-LM shards. Tasks of other objectives (the
judges) subclass `StreamTask`. Validation always covers the stream's whole `val/` set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from assay.data.stream import ShardReader, load_val, wait_for_stream
from assay.errors import ConfigError
from assay.model.transformer import IGNORE_INDEX
from assay.train.likelihood import LN2
from assay.train.task import Task


class StreamBatches:
    """Fixed-size batches cut from consecutive shards; the position (shard, offset) is the state.

    All ranks read every shard and take their slice of each global batch, as the block sampler
    does for corpora.
    """

    def __init__(self, folder: str, batch_size: int, dist, delete: bool, timeout: float):
        self.reader = ShardReader(folder, delete=delete, timeout=timeout, track_keep=True, owner=dist.is_main)
        self.batch_size, self.dist = batch_size, dist
        self.shard: dict[str, torch.Tensor] | None = None
        self.shard_seq, self.offset = 0, 0

    def _load_next(self) -> None:
        self.shard_seq = self.reader.seq
        self.shard, self.offset = self.reader.read(), 0

    def next(self) -> dict[str, torch.Tensor]:
        need, parts = self.batch_size * self.dist.world_size, []
        while need:
            if self.shard is None or self.offset >= len(self.shard["idx"]):
                self._load_next()
            take = min(need, len(self.shard["idx"]) - self.offset)
            parts.append({k: v[self.offset : self.offset + take] for k, v in self.shard.items()})
            self.offset += take
            need -= take
        r, b = self.dist.rank, self.batch_size
        return {k: torch.cat([p[k] for p in parts])[r * b : (r + 1) * b] for k in parts[0]}

    def state_dict(self) -> dict[str, int]:
        """The next sample to read, as (shard, offset); a finished shard reads as (next, 0)."""
        if self.shard is None or self.offset >= len(self.shard["idx"]):
            return {"seq": self.reader.seq, "offset": 0}
        return {"seq": self.shard_seq, "offset": self.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.reader.seq, self.shard, self.offset = int(state["seq"]), None, 0
        if state["offset"]:
            self._load_next()
            self.offset = int(state["offset"])

    def on_checkpoint(self) -> None:
        self.reader.mark_keep(self.state_dict()["seq"])


class StreamTask(Task):
    """Shared by the stream tasks: batches, the validation set, state and checkpoint hooks."""

    fields: tuple[str, ...] = ()  # the shard fields the task reads
    stream_kind = "masked_lm"  # the `stream.provider` that writes them (named in the error)

    def __init__(self, cfg, dist, device, tokenizer, splits=None):
        self.cfg, self.dist, self.device, self.tokenizer = cfg, dist, device, tokenizer
        self.folder = Path(cfg.data.stream)
        self.meta = wait_for_stream(self.folder, cfg.data.stream_timeout)
        missing = [f for f in self.fields if f not in self.meta["fields"]]
        if missing:
            raise ConfigError(
                f"{self.folder} is a {self.meta['mode']!r} stream without {missing}: "
                f"{cfg.objective} needs a {self.stream_kind} stream"
            )
        self.batches = StreamBatches(
            cfg.data.stream, cfg.train.batch_size, dist, cfg.data.stream_delete, cfg.data.stream_timeout
        )
        self.val = load_val(self.folder)
        self.block_len = int(self.meta["seq_len"])
        self.out_dir = Path(cfg.run.out_dir)

    @property
    def val_size(self) -> int:
        return len(self.val["idx"])

    def state_dict(self) -> dict[str, Any]:
        # `input` tells a loaded judge how its inputs looked ([CLS] first or not, window length)
        cls = self.meta.get("config", {}).get("stream", {}).get("cls", False)
        return {"stream": self.batches.state_dict(), "input": {"cls": bool(cls), "seq_len": self.block_len}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(state["stream"])

    def on_checkpoint(self) -> None:
        self.batches.on_checkpoint()

    def _val_outputs(self, model, field: str):
        """Model outputs over the whole validation set (every rank computes all of it: it is small)."""
        idx = self.val["idx"].long()
        outputs = []
        for start in range(0, len(idx), self.cfg.train.batch_size):
            logits, _ = model(idx[start : start + self.cfg.train.batch_size].to(self.device))
            outputs.append(logits.float().cpu())
        return torch.cat(outputs), self.val[field]


class StreamMaskedLMTask(StreamTask):
    """The masked-diffusion objective on masked-LM shards (`assay data produce`, provider masked_lm)."""

    objective = "diffusion"
    fields = ("idx", "targets")

    def train_batch(self):
        b = self.batches.next()
        return {"idx": b["idx"].long(), "targets": b["targets"].long()}

    @torch.no_grad()
    def evaluate(self, model, final: bool = False) -> dict[str, float]:
        idx, targets = self.val["idx"].long(), self.val["targets"].long()
        stages = self.val["stage"].long()
        total = torch.zeros(int(stages.max()) + 1)
        count = torch.zeros_like(total)
        for start in range(0, len(idx), self.cfg.train.batch_size):
            sl = slice(start, start + self.cfg.train.batch_size)
            logits, _ = model(idx[sl].to(self.device), targets[sl].to(self.device))
            t = targets[sl]
            ce = F.cross_entropy(logits.float().cpu(), t[t != IGNORE_INDEX], reduction="none")
            rows = stages[sl][:, None].expand_as(t)[t != IGNORE_INDEX]
            total.index_add_(0, rows, ce)
            count.index_add_(0, rows, torch.ones_like(ce))
        out = {f"val_loss/{s}": float(total[s] / count[s]) for s in range(len(total)) if count[s] > 0}
        out["val_loss"] = float(total.sum() / count.sum().clamp_min(1))
        out["val_bits_per_token"] = out["val_loss"] / LN2
        return out
