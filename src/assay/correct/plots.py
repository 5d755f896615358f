"""Plots of correction runs (matplotlib, Agg): `plot_run` for one run, `plot_compare` for a comparison."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from assay.correct.records import TraceRecord, as_trace
from assay.correct.summary import REWARD_BLOCK


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_by_turn(traces: Iterable[TraceRecord | Mapping[str, Any]]) -> list[float]:
    """Accuracy after t reprompts, t = 0..max: a trace that stopped earlier counts with its final answer."""
    traces = [as_trace(t) for t in traces]
    if not traces:
        return []
    depth = max(len(t.turns) for t in traces)
    return [sum(t.turns[min(k, len(t.turns) - 1)].correct for t in traces) / len(traces) for k in range(depth)]


def plot_run(traces: Iterable[TraceRecord | Mapping[str, Any]], out_dir: str | Path) -> Path:
    """OUT/plots/run.png: accuracy by turn, actions taken (coloured by mean reward), reward trend."""
    traces = [as_trace(t) for t in traces]
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)

    acc = accuracy_by_turn(traces)
    axes[0].plot(range(len(acc)), acc, "o-", color="tab:blue")
    axes[0].set_xticks(range(len(acc)))
    axes[0].set_xlabel("reprompts")
    axes[0].set_ylabel("accuracy")
    axes[0].set_ylim(0, 1)
    axes[0].set_title(f"accuracy by turn (n = {len(traces)})")
    axes[0].grid(alpha=0.3)

    counts: Counter[str] = Counter()
    rewards: dict[str, list[float]] = defaultdict(list)
    for t in traces:
        for u in t.updates:
            counts[u.arm] += 1
            rewards[u.arm].append(u.reward)
    top = counts.most_common(15)[::-1]
    if top:
        means = [sum(rewards[a]) / len(rewards[a]) for a, _ in top]
        colors = plt.cm.RdYlGn([(m + 1) / 2 for m in means])
        axes[1].barh([a for a, _ in top], [c for _, c in top], color=colors)
        axes[1].tick_params(axis="y", labelsize=7)
    axes[1].set_xlabel("times chosen (colour: mean reward, red -1 .. green +1)")
    axes[1].set_title("actions")

    block: list[float] = []
    trend: list[float] = []
    for i, t in enumerate(traces, 1):
        block += [u.reward for u in t.updates]
        if i % REWARD_BLOCK == 0 or i == len(traces):
            if block:
                trend.append(sum(block) / len(block))
            block = []
    axes[2].plot(range(1, len(trend) + 1), trend, "o-", color="tab:purple")
    axes[2].axhline(0, color="grey", lw=0.8)
    axes[2].set_xlabel(f"block of {REWARD_BLOCK} traces (file order)")
    axes[2].set_ylabel("mean reward per update")
    axes[2].set_title("reward trend")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    path = out_dir / "run.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_compare(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Bars per policy: accuracy at turn 0 and final, right->wrong and wrong->right rates; tokens per trace."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [r["policy"] for r in rows]
    metrics = [
        ("accuracy_turn0", "accuracy, turn 0"),
        ("accuracy_final", "accuracy, final"),
        ("right_to_wrong", "right -> wrong"),
        ("wrong_to_right", "wrong -> right"),
    ]
    fig, (ax, ax_tokens) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=100, gridspec_kw={"width_ratios": [3, 1.4]})
    width = 0.8 / len(metrics)
    for j, (key, label) in enumerate(metrics):
        xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [r[key] or 0 for r in rows], width, label=label)
    ax.set_xticks(range(len(rows)), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of questions")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or "policies on the same questions")
    ax_tokens.bar(names, [r["tokens_per_trace"] or 0 for r in rows], color="tab:grey")
    ax_tokens.set_ylabel("billed tokens per trace")
    ax_tokens.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
