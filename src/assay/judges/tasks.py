"""The judges' training objectives: a token classifier (the "inspector": which tokens did the LM
write?) and a sequence scorer (what fraction of the text did it write?), both read from a synthetic
stream (`assay data produce` with `stream.provider = "synthetic"`, see synthetic.py). Their final
evaluation also measures the likelihood baseline (baseline.py) on the same validation set.

`TASKS` is the judges' task table (objective -> Task, see assay.train.task).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import assay.stats as stats
from assay.data.stream import ShardReader, list_shards, load_shard, read_meta
from assay.data.tokenizer import load_tokenizer
from assay.errors import ConfigError
from assay.judges.baseline import orientation, sequence_logprob, token_logprobs
from assay.judges.calibration import calibration_plot
from assay.judges.features import FeatureJudge, JudgeConfig
from assay.masking import MaskVocab
from assay.model.transformer import IGNORE_INDEX, class_weights_from_counts
from assay.progress import console
from assay.train.checkpoint import load_checkpoint
from assay.train.stream_tasks import StreamTask


class JudgeTask(StreamTask):
    """Shared by the judges: a synthetic stream, and the likelihood baseline of the stream's LM."""

    stream_kind = "synthetic"
    config_class = JudgeConfig

    @classmethod
    def build_model(cls, cfg):
        """A plain Transformer, or with [features] lm_features a FeatureJudge (features.py) whose
        LM shape and special ids are taken from the LM the first time."""
        features = getattr(cfg, "features", None)  # a plain TrainingConfig has none
        if features is None or not features.lm_features:
            return super().build_model(cfg)
        if features.lm_model is None:
            lm = load_checkpoint(features.lm or _stream_lm(cfg))
            if lm.config.model.mode != "language_model" or lm.config.model.causal:
                raise ConfigError(f"features.lm must be a masked-diffusion LM; {lm.directory} is {lm.config.objective}")
            features.lm = str(lm.directory)
            features.lm_model = lm.config.model.model_copy(update={"init_from": None})
            features.mask_id = lm.tokenizer.mask_id
            features.special_ids = sorted(lm.tokenizer.special_ids)
        return FeatureJudge(cfg.model, features)

    def setup_model(self, model, resumed: bool) -> None:
        """A new feature judge gets the LM's weights (a resumed one has them in its checkpoint)."""
        if isinstance(model, FeatureJudge) and not resumed:
            lm = load_checkpoint(self.cfg.features.lm)
            if lm.tokenizer.fingerprint() != self.tokenizer.fingerprint():
                raise ConfigError(f"features.lm {lm.directory} uses another tokenizer than the stream")
            model.lm.load_state_dict(lm.build_model().state_dict())
            if self.dist.is_main:
                console.print(
                    f"features: the frozen LM (lm.*) is {lm.directory}, {self.cfg.features.groups} passes per text"
                )

    def __init__(self, cfg, dist, device, tokenizer, splits=None):
        super().__init__(cfg, dist, device, tokenizer, splits)
        self._baseline: dict[str, Any] | None = None
        self._own_stream: Path | None = None  # with other data: the run's own training stream
        self._other_data = False

    def evaluating_other_data(self, own) -> None:
        self._other_data = True
        self._own_stream = Path(own.data.stream) if own.data.stream else None

    def _orientation_shard(self) -> tuple[dict[str, torch.Tensor], str] | None:
        """The training shard the baseline's direction is learned on, and whose it is: the run's
        own stream ("run_stream"), or, when evaluating other data and the run's stream is gone (or
        no longer its tokens), the first training shard of the stream evaluated ("eval_stream")."""
        if not self._other_data:  # training: the stream is the run's, its shard 0 may still be coming
            return ShardReader(self.folder, timeout=self.cfg.data.stream_timeout, owner=False).read(), "run_stream"
        candidates = [(self._own_stream, "run_stream"), (self.folder, "eval_stream")]
        for folder, source in candidates:
            if folder is None or not (folder / "meta.json").exists() or not (folder / "tokenizer").exists():
                continue
            if load_tokenizer(folder / "tokenizer").fingerprint() != self.tokenizer.fingerprint():
                continue
            if not set(self.fields) <= set(read_meta(folder)["fields"]):
                continue
            shards = list_shards(folder / "train")
            if shards:
                return load_shard(shards[min(shards)]), source
        console.print(
            "[yellow]warning:[/] likelihood baseline skipped: neither the run's stream nor the one evaluated "
            "has a training shard to learn its direction on"
        )
        return None

    def _baseline_logprobs(self):
        """LM log-probabilities of the observed tokens on a training shard (to orient the baseline)
        and on the validation set, and where that shard came from; None if the stream's LM is not
        available. The LM is the one that made the stream evaluated."""
        path = self.meta.get("lm")
        if not path or not Path(path).exists():
            console.print(f"[yellow]warning:[/] likelihood baseline skipped: the stream's LM ({path}) is not there")
            return None
        found = self._orientation_shard()
        if found is None:
            return None
        train, source = found
        lm = load_checkpoint(path).build_model(self.device)
        vocab = MaskVocab.of(self.tokenizer)
        return (
            train,
            token_logprobs(lm, train["idx"].long(), vocab),
            token_logprobs(lm, self.val["idx"].long(), vocab),
            {"baseline_direction_from": source} if self._other_data else {},
        )


class TokenClassificationTask(JudgeTask):
    """The inspector: which tokens were written by the LM?"""

    objective = "token_classification"
    report_columns = [
        ("AUROC", "val_auroc", "baseline_auroc"),
        ("F1 (replaced)", "val_f1", None),
        ("accuracy", "val_accuracy", None),
    ]
    eval_aliases = {"auroc": "val_auroc"}
    fields = ("idx", "token_labels")

    def __init__(self, cfg, dist, device, tokenizer, splits=None):
        super().__init__(cfg, dist, device, tokenizer, splits)
        n = int(self.meta.get("num_classes", 2))
        if cfg.model.num_classes < n:
            raise ConfigError(f"model.num_classes is {cfg.model.num_classes} but the stream has {n} token classes")

    def train_batch(self):
        b = self.batches.next()
        return {"idx": b["idx"].long(), "targets": b["token_labels"].long()}

    def setup_model(self, model, resumed: bool) -> None:
        """Class weights from the training distribution (the first shards), computed once."""
        super().setup_model(model, resumed)
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
            "val_accuracy": stats.accuracy(pred, y_np),
            "val_auroc": stats.auroc(machine, y_np > 0),
        }
        prf = stats.per_class_prf(pred, y_np, flat.size(1))
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
            train, train_lp, val_lp, source = found
            labels = train["token_labels"].long()
            sign = orientation(train_lp[labels != IGNORE_INDEX].numpy(), labels[labels != IGNORE_INDEX].numpy() > 0)
            self._baseline = {
                "baseline_auroc": stats.auroc(sign * val_lp[keep].numpy(), y_np > 0),
                "baseline_direction": sign,  # +1: a higher LM log-prob means machine-written
            } | source
        return self._baseline

    def summary(self, m):
        text = f" | acc {m['val_accuracy']:.4f} | F1 {m['val_f1']:.4f} | AUROC {m['val_auroc']:.4f}"
        return text + (f" (LM-likelihood baseline {m['baseline_auroc']:.4f})" if "baseline_auroc" in m else "")


class SequenceScoringTask(JudgeTask):
    """The sequence scorer: what fraction of this text did the LM write?"""

    objective = "sequence_scoring"
    report_columns = [
        ("pearson", "val_pearson", "baseline_pearson"),
        ("spearman", "val_spearman", "baseline_spearman"),
        ("MAE", "val_mae", None),
        ("R²", "val_r2", None),
    ]
    eval_aliases = {"pearson": "val_pearson", "spearman": "val_spearman"}
    fields = ("idx", "score")

    def train_batch(self):
        b = self.batches.next()
        batch = {"idx": b["idx"].long(), "targets": b["score"].float()}
        if self.cfg.model.pooling == "tokens":  # a multi-task judge also learns from the token labels
            batch["token_targets"] = b["token_labels"].long()
        return batch

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
            "val_pearson": stats.pearson(pred, true),
            "val_spearman": stats.spearman(pred, true),
            "val_mae": stats.mae(pred, true),
            "val_r2": stats.r2(pred, true),
        }
        if final:
            if self.dist.is_main:
                calibration_plot(pred, true, self.out_dir / "calibration.png", f"sequence scorer: {self.out_dir.name}")
            if self.cfg.train.baseline:
                out |= self._sequence_baseline(true)
        return out

    def _sequence_baseline(self, true) -> dict[str, float]:
        if self._baseline is None:
            found = self._baseline_logprobs()
            if found is None:
                return {}
            train, train_lp, val_lp, source = found
            sign = orientation(sequence_logprob(train_lp).numpy(), train["score"].numpy())
            seq = sign * sequence_logprob(val_lp).numpy()
            self._baseline = {
                "baseline_pearson": stats.pearson(seq, true),
                "baseline_spearman": stats.spearman(seq, true),
                "baseline_direction": sign,
            } | source
        return self._baseline

    def summary(self, m):
        text = f" | pearson {m['val_pearson']:.4f} | spearman {m['val_spearman']:.4f} | MAE {m['val_mae']:.4f}"
        return text + (
            f" (LM-likelihood baseline pearson {m['baseline_pearson']:.4f})" if "baseline_pearson" in m else ""
        )


def _stream_lm(cfg) -> str:
    """The LM that wrote the judge's stream (its meta.json `lm`)."""
    meta = Path(cfg.data.stream or "") / "meta.json"
    try:
        lm = json.loads(meta.read_text(encoding="utf-8")).get("lm")
    except (OSError, json.JSONDecodeError):
        lm = None
    if not lm:
        raise ConfigError(f"features.lm_features needs the LM: set features.lm (no LM recorded in {meta})")
    return lm


TASKS = {task.objective: task for task in (TokenClassificationTask, SequenceScoringTask)}
