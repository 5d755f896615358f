"""`assay correct compare`: several policies on the same questions in one run, and their table.

Each policy runs as an ordinary correction run in OUT/<policy>/ (traces, summary, policy state,
plots), one after the other, through one LLM client and one response cache (OUT/cache.sqlite unless
`llm.cache` names one). Requests are seeded per (question, turn), so every policy sees the same
initial answers, and turn 0 is computed once. The learning policies (ucb, thompson, shared, epsilon) learn online
over the questions in order, from scratch or from `compare.learned_state` (copied into their folder).
OUT/compare.json and OUT/compare.md hold the table, OUT/compare.png the plot.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from assay.correct.config import CorrectRun

LEARNING = {"ucb", "thompson", "shared", "epsilon"}
COLUMNS = [
    ("policy", "policy", "{}"),
    ("n", "n", "{}"),
    ("accuracy_turn0", "acc. turn 0", "{:.1%}"),
    ("accuracy_final", "acc. final", "{:.1%}"),
    ("right_to_wrong", "right→wrong", "{:.1%}"),
    ("wrong_to_right", "wrong→right", "{:.1%}"),
    ("mean_turns", "reprompts/q", "{:.2f}"),
    ("tokens_per_trace", "tokens/trace", "{:.0f}"),
]


def compare_row(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    return (
        {"policy": name}
        | {key: summary.get(key) for key, _, _ in COLUMNS[1:]}
        | {
            "n_right_to_wrong": summary["n_right_to_wrong"],
            "n_wrong_to_right": summary["n_wrong_to_right"],
            "tokens_per_improvement": summary["tokens_per_improvement"],
        }
    )


def format_compare(rows: list[dict[str, Any]]) -> str:
    """A Markdown table (one line per policy)."""

    def cell(fmt: str, value: Any) -> str:
        return "-" if value is None else fmt.format(value)

    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(fmt, row[key]) for key, _, fmt in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


async def arun_compare(run: CorrectRun, out_dir: Path) -> list[dict[str, Any]]:
    from assay.correct.engine import arun_correct
    from assay.correct.plots import plot_compare
    from assay.io import atomic_write_json, atomic_write_text
    from assay.llm.client import LLMClient

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    llm = run.llm if run.llm.cache is not None else run.llm.model_copy(update={"cache": out_dir / "cache.sqlite"})
    rows = []
    client = LLMClient(llm)
    try:
        for name in run.compare.policies:
            sub = out_dir / name
            config = run.correct.model_copy(
                update={
                    "policy": name,
                    "template": run.compare.fixed_template if name == "fixed" else None,
                    "policy_state": None,
                    "policy_init": run.compare.learned_state if name in LEARNING else None,
                }
            )
            summary = await arun_correct(config, sub, llm, run.runner, client)
            rows.append(compare_row(name, summary))
    finally:
        await client.aclose()
    table = format_compare(rows)
    atomic_write_json(out_dir / "compare.json", {"rows": rows, "config": run.model_dump(mode="json")})
    atomic_write_text(out_dir / "compare.md", table + "\n")
    plot_compare(rows, out_dir / "compare.png", f"{run.correct.dataset}, max {run.correct.max_turns} reprompts")
    return rows


def run_compare(run: CorrectRun, out_dir: Path) -> list[dict[str, Any]]:
    return asyncio.run(arun_compare(run, out_dir))
