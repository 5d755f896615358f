"""The calibration of a sequence scorer: mean predicted vs mean true score per bin of the prediction,
and the plot `assay train` writes beside a judge run (calibration.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
