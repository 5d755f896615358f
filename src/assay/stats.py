"""Summary statistics, one definition each (numpy in, floats out).

Classification: accuracy, per-class precision/recall/F1, AUROC (the rank statistic of
Mann-Whitney, ties counted half). Regression: Pearson, Spearman, MAE, R². Means: mean and
standard error. An undefined value (no positives, no variance, no values) is NaN, never None:
writers of JSON turn NaN into null with `json_number`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN, NaN for no values; s.e. 0 for one value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / max(n - 1, 1)
    return mean, math.sqrt(var / n)


def json_number(value: float) -> float | None:
    """A float for JSON: NaN and infinities become None (null)."""
    return float(value) if value is not None and math.isfinite(value) else None
