"""`assay report`: the final metrics of runs side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assay.errors import AssayError
from assay.train.lm_tasks import CORE_TASKS
from assay.train.task import TaskTable, objective_of


def load_reports(runs: list[Path], tasks: TaskTable = CORE_TASKS) -> list[dict[str, Any]]:
    """Per run: its objective and the metrics its task reports (`Task.report_columns`)."""
    rows = []
    for run in runs:
        try:
            final = json.loads((Path(run) / "eval.json").read_text(encoding="utf-8"))
            config = json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AssayError(f"{run} has no eval.json/config.json: is it a finished run folder?") from None
        except json.JSONDecodeError:
            raise AssayError(f"{run}: eval.json or config.json is corrupt") from None
        except UnicodeDecodeError:
            raise AssayError(f"{run}: eval.json or config.json is not UTF-8 text") from None
        objective = objective_of(config, tasks)
        if objective not in tasks:
            raise AssayError(f"{run} is a {objective} run; this reports only {', '.join(tasks)} runs")
        metrics = []
        for label, key, base in tasks[objective].report_columns:
            if key in final:
                metrics.append({"metric": label, "value": final[key], "baseline": final.get(base) if base else None})
        rows.append({"run": str(run), "objective": objective, "iter": final.get("iter"), "metrics": metrics})
    return rows


def render_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="final validation metrics (eval.json)")
    for col in ("run", "objective", "iter", "metric", "value", "baseline"):
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
