"""metrics.jsonl (one JSON object per line) and the loss-curve PNG drawn from it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from assay.io import atomic_write, atomic_write_text
from assay.tracking import Tracker


class MetricsLog:
    """Append-only JSONL, flushed per line. On resume, lines beyond the checkpoint's iteration
    (logged after the last save, before an interruption) are dropped so the log never repeats.
    `tracker` (assay.tracking): every record also goes there, at its "iter", with the same names."""

    def __init__(self, path: str | Path, resume_iter: int | None = None, tracker: Tracker | None = None):
        self.path = Path(path)
        self.tracker = tracker
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_iter is not None and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("iter", 0) <= resume_iter]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        elif resume_iter is None:
            self.path.write_text("", encoding="utf-8")
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 -- kept open for the run

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(_clean(record)) + "\n")
        self._file.flush()
        if self.tracker is not None and isinstance(record.get("iter"), int):
            self.tracker.log({k: v for k, v in record.items() if k != "iter"}, step=record["iter"])

    def close(self) -> None:
        self._file.close()
        if self.tracker is not None:
            self.tracker.close()


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a crash
    return rows


def plot_loss_curve(metrics_path: str | Path, png_path: str | Path, title: str = "") -> None:
    """Train loss (raw, faint, and an EMA) and validation loss against the iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    train = [(r["iter"], r["train_loss"]) for r in rows if r.get("train_loss") is not None]
    val = [(r["iter"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    stages = [r["iter"] for r in rows if r.get("event") == "stage"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    if train:
        its, losses = zip(*train, strict=True)
        ax.plot(its, losses, color="tab:blue", alpha=0.25, lw=0.8)
        ema, smooth = losses[0], []
        for v in losses:
            ema = 0.9 * ema + 0.1 * v
            smooth.append(ema)
        ax.plot(its, smooth, color="tab:blue", lw=1.5, label="train (EMA 0.9)")
    if val:
        its, losses = zip(*val, strict=True)
        ax.plot(its, losses, "o-", color="tab:orange", lw=1.5, ms=3, label="validation")
    for it in stages:
        ax.axvline(it, color="grey", ls=":", lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
