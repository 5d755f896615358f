"""Metrics of judges, computed over a whole validation set (numpy in, floats out).

Token classification: accuracy, per-class precision/recall/F1, AUROC (the rank statistic of
Mann-Whitney, ties counted half). Sequence scoring: Pearson, Spearman, MAE, R², and a
calibration plot (mean predicted vs mean true score per bin of the prediction).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import rankdata


def accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    return float((pred == true).mean()) if len(true) else float("nan")


def per_class_prf(pred: np.ndarray, true: np.ndarray, num_classes: int) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every class (0 when a ratio is 0/0)."""
    out = {}
    for c in range(num_classes):
        tp = int(((pred == c) & (true == c)).sum())
        predicted, actual = int((pred == c).sum()), int((true == c).sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[str(c)] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    return out


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative)."""
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks: ties count half
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc**2).sum() * (yc**2).sum())
    return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(rankdata(x), rankdata(y))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.abs(np.asarray(pred, np.float64) - true).mean())


def r2(pred: np.ndarray, true: np.ndarray) -> float:
    true = np.asarray(true, np.float64)
    ss_tot = ((true - true.mean()) ** 2).sum()
    return float(1.0 - ((true - pred) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")


def calibration_bins(pred: np.ndarray, true: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per equal-width bin of the prediction: count, mean prediction, mean truth."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(pred, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            rows.append(
                {
                    "lo": edges[b],
                    "hi": edges[b + 1],
                    "n": int(sel.sum()),
                    "pred": float(pred[sel].mean()),
                    "true": float(true[sel].mean()),
                }
            )
    return rows


def calibration_plot(pred: np.ndarray, true: np.ndarray, path: str | Path, title: str = "") -> None:
    """Scatter of predicted vs true score, binned means, and the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from assay.io import atomic_write

    fig, ax = plt.subplots(figsize=(4.8, 4.6), dpi=110)
    ax.scatter(true, pred, s=6, alpha=0.35, color="tab:blue", label="validation samples")
    rows = calibration_bins(pred, true)
    ax.plot([r["true"] for r in rows], [r["pred"] for r in rows], "o-", color="tab:orange", label="binned means")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    ax.set_xlabel("true fraction of replaced tokens")
    ax.set_ylabel("predicted score")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
