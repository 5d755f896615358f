"""`assay report`: the final metrics of runs side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assay.errors import AssayError

# (label, eval.json key, baseline key) per objective
COLUMNS = {
    "sequence_scoring": [
        ("pearson", "val_pearson", "baseline_pearson"),
        ("spearman", "val_spearman", "baseline_spearman"),
        ("MAE", "val_mae", None),
        ("R²", "val_r2", None),
    ],
    "token_classification": [
        ("AUROC", "val_auroc", "baseline_auroc"),
        ("F1 (replaced)", "val_f1", None),
        ("accuracy", "val_accuracy", None),
    ],
    "diffusion": [("val loss", "val_loss", None), ("bits/char (ELBO)", "bits_per_char", None)],
    "autoregressive": [("val loss", "val_loss", None), ("bits/char", "bits_per_char", None)],
}


def load_reports(runs: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        try:
            final = json.loads((Path(run) / "eval.json").read_text(encoding="utf-8"))
            config = json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AssayError(f"{run} has no eval.json/config.json: is it a finished run folder?") from None
        except json.JSONDecodeError:
            raise AssayError(f"{run}: eval.json or config.json is corrupt") from None
        mode = config["model"]["mode"]
        objective = {"token_classifier": "token_classification", "sequence_scorer": "sequence_scoring"}.get(
            mode, "autoregressive" if config["model"]["attention"] == "causal" else "diffusion"
        )
        metrics = []
        for label, key, base in COLUMNS[objective]:
            if key in final:
                metrics.append({"metric": label, "value": final[key], "baseline": final.get(base) if base else None})
        rows.append({"run": str(run), "objective": objective, "iter": final.get("iter"), "metrics": metrics})
    return rows


def render_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="final validation metrics (eval.json)")
    for col in ("run", "objective", "iter", "metric", "value", "LM-likelihood baseline"):
        table.add_column(col, justify="left" if col in ("run", "objective", "metric") else "right")
    for row in rows:
        for i, m in enumerate(row["metrics"]):
            table.add_row(
                row["run"] if i == 0 else "",
                row["objective"] if i == 0 else "",
                str(row["iter"]) if i == 0 else "",
                m["metric"],
                f"{m['value']:.4f}",
                "" if m["baseline"] is None else f"{m['baseline']:.4f}",
            )
        table.add_section()
    Console(width=140).print(table)
