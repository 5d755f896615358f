"""Tasks that train from a stream folder (`data.stream`): masked LM, token classification and
sequence scoring. Validation always covers the stream's whole `val/` set.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from assay.data.stream import ShardReader, load_val, wait_for_stream
from assay.errors import ConfigError
from assay.masking.strategies import Vocab
from assay.model.transformer import IGNORE_INDEX, class_weights_from_counts
from assay.progress import console
from assay.train import judge_metrics as jm
from assay.train.baseline import orientation, sequence_logprob, token_logprobs
from assay.train.tasks import Task

LN2 = math.log(2)


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

    fields: tuple[str, ...] = ()

    def __init__(self, cfg, dist, device, tokenizer):
        self.cfg, self.dist, self.device, self.tokenizer = cfg, dist, device, tokenizer
        self.folder = Path(cfg.data.stream)
        self.meta = wait_for_stream(self.folder, cfg.data.stream_timeout)
        missing = [f for f in self.fields if f not in self.meta["fields"]]
        if missing:
            raise ConfigError(
                f"{self.folder} is a {self.meta['mode']!r} stream without {missing}: "
                f"{cfg.objective} needs a {'synthetic' if 'score' in self.fields else 'masked_lm'} stream"
            )
        self.batches = StreamBatches(
            cfg.data.stream, cfg.train.batch_size, dist, cfg.data.stream_delete, cfg.data.stream_timeout
        )
        self.val = load_val(self.folder)
        self.block_len = int(self.meta["seq_len"])
        self.out_dir = Path(cfg.run.out_dir)
        self._baseline: dict[str, float] | None = None

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

    def _baseline_logprobs(self):
        """LM log-probabilities of the observed tokens on the first training shard (to orient the
        baseline) and on the validation set; None if the stream's LM is not available."""
        from assay.train.checkpoint import load_checkpoint

        path = self.meta.get("lm")
        if not path or not Path(path).exists():
            console.print(f"[yellow]warning:[/] likelihood baseline skipped: the stream's LM ({path}) is not there")
            return None
        lm = load_checkpoint(path).build_model(self.device)
        vocab = Vocab.of(self.tokenizer)
        train = ShardReader(self.folder, timeout=self.cfg.data.stream_timeout, owner=False).read()
        return (
            train,
            token_logprobs(lm, train["idx"].long(), vocab),
            token_logprobs(lm, self.val["idx"].long(), vocab),
        )


class StreamMaskedLMTask(StreamTask):
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


class TokenClassificationTask(StreamTask):
    """The inspector: which tokens were written by the LM?"""

    fields = ("idx", "token_labels")

    def __init__(self, cfg, dist, device, tokenizer):
        super().__init__(cfg, dist, device, tokenizer)
        n = int(self.meta.get("num_classes", 2))
        if cfg.model.num_classes < n:
            raise ConfigError(f"model.num_classes is {cfg.model.num_classes} but the stream has {n} token classes")

    def train_batch(self):
        b = self.batches.next()
        return {"idx": b["idx"].long(), "targets": b["token_labels"].long()}

    def setup_model(self, model, resumed: bool) -> None:
        """Class weights from the training distribution (the first shards), computed once."""
        if self.cfg.train.class_weighting != "balanced" or resumed:
            return
        reader = ShardReader(self.folder, timeout=self.cfg.data.stream_timeout, owner=False)
        counts = torch.zeros(self.cfg.model.num_classes)
        for _ in range(min(8, reader.total or 8)):
            labels = reader.read()["token_labels"].long()
            labels = labels[labels != IGNORE_INDEX]
            counts += torch.bincount(labels, minlength=len(counts))[: len(counts)].float()
        model.class_weights.copy_(class_weights_from_counts(counts))
        weights = ", ".join(f"{w:.2f}" for w in model.class_weights.tolist())
        if self.dist.is_main:
            console.print(f"class weights from {int(counts.sum()):,} training tokens: {weights}")

    @torch.no_grad()
    def evaluate(self, model, final: bool = False) -> dict[str, float]:
        logits, labels = self._val_outputs(model, "token_labels")
        labels = labels.long()
        keep = labels != IGNORE_INDEX
        flat, y = logits[keep], labels[keep]  # (N, C), (N,)
        probs = flat.softmax(-1)
        pred = probs.argmax(-1).numpy()
        y_np = y.numpy()
        machine = 1.0 - probs[:, 0].numpy()  # P(not original)
        out: dict[str, Any] = {
            "val_loss": float(F.cross_entropy(flat, y)),
            "val_accuracy": jm.accuracy(pred, y_np),
            "val_auroc": jm.auroc(machine, y_np > 0),
        }
        prf = jm.per_class_prf(pred, y_np, flat.size(1))
        for c, row in prf.items():
            for key in ("precision", "recall", "f1"):
                out[f"val_{key}/{c}"] = row[key]
        out["val_f1"] = prf["1"]["f1"]
        if final and self.cfg.train.baseline:
            out |= self._token_baseline(keep, y_np)
        return out

    def _token_baseline(self, keep, y_np) -> dict[str, float]:
        if self._baseline is None:
            found = self._baseline_logprobs()
            if found is None:
                return {}
            train, train_lp, val_lp = found
            labels = train["token_labels"].long()
            sign = orientation(train_lp[labels != IGNORE_INDEX].numpy(), labels[labels != IGNORE_INDEX].numpy() > 0)
            self._baseline = {
                "baseline_auroc": jm.auroc(sign * val_lp[keep].numpy(), y_np > 0),
                "baseline_direction": sign,  # +1: a higher LM log-prob means machine-written
            }
        return self._baseline

    def summary(self, m):
        text = f" | acc {m['val_accuracy']:.4f} | F1 {m['val_f1']:.4f} | AUROC {m['val_auroc']:.4f}"
        return text + (f" (LM-likelihood baseline {m['baseline_auroc']:.4f})" if "baseline_auroc" in m else "")


class SequenceScoringTask(StreamTask):
    """The judge: what fraction of this text did the LM write?"""

    fields = ("idx", "score")

    def train_batch(self):
        b = self.batches.next()
        return {"idx": b["idx"].long(), "targets": b["score"].float()}

    @torch.no_grad()
    def evaluate(self, model, final: bool = False) -> dict[str, float]:
        logits, target = self._val_outputs(model, "score")
        pred, true = torch.sigmoid(logits).numpy().astype(np.float64), target.numpy().astype(np.float64)
        if self.cfg.model.score_loss == "bce":
            loss = float(F.binary_cross_entropy_with_logits(logits, target.float()))
        else:
            loss = float(((pred - true) ** 2).mean())
        out: dict[str, Any] = {
            "val_loss": loss,
            "val_pearson": jm.pearson(pred, true),
            "val_spearman": jm.spearman(pred, true),
            "val_mae": jm.mae(pred, true),
            "val_r2": jm.r2(pred, true),
        }
        if final:
            if self.dist.is_main:
                jm.calibration_plot(
                    pred, true, self.out_dir / "calibration.png", f"sequence scorer: {self.out_dir.name}"
                )
            if self.cfg.train.baseline:
                out |= self._sequence_baseline(true)
        return out

    def _sequence_baseline(self, true) -> dict[str, float]:
        if self._baseline is None:
            found = self._baseline_logprobs()
            if found is None:
                return {}
            train, train_lp, val_lp = found
            sign = orientation(sequence_logprob(train_lp).numpy(), train["score"].numpy())
            seq = sign * sequence_logprob(val_lp).numpy()
            self._baseline = {
                "baseline_pearson": jm.pearson(seq, true),
                "baseline_spearman": jm.spearman(seq, true),
                "baseline_direction": sign,
            }
        return self._baseline

    def summary(self, m):
        text = f" | pearson {m['val_pearson']:.4f} | spearman {m['val_spearman']:.4f} | MAE {m['val_mae']:.4f}"
        return text + (
            f" (LM-likelihood baseline pearson {m['baseline_pearson']:.4f})" if "baseline_pearson" in m else ""
        )
