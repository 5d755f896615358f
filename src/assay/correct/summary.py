"""`summary.json` of a correction run, computed from every trace in `traces.jsonl` (so a resumed run
summarises all of its traces, not only the last session's).

Rates are over all n traces: `right_to_wrong` = share that started right and ended wrong,
`wrong_to_right` = share that started wrong and ended right. `tokens_per_improvement` = billed
tokens of all correction turns (turn >= 1) divided by the number of wrong->right traces (None if
there are none). `mean_turns` = mean reprompts per trace (total_turns - 1). Rewards are the policy
updates logged in each trace (`stop` included, reward 0). Traces of the old format are read too
(records.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from assay.correct.failure_modes import FAILURE_MODES
from assay.correct.records import TraceRecord, as_trace

REWARD_BLOCK = 10  # traces per point of the reward trend


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(traces: Iterable[TraceRecord | Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of traces (TraceRecords or trace dicts, old or current format), in file order."""
    traces = [as_trace(t) for t in traces]
    n = len(traces)
    initial = sum(t.initial_correct for t in traces)
    final = sum(t.final_accuracy for t in traces)
    r2w = sum(t.initial_correct and not t.final_accuracy for t in traces)
    w2r = sum(not t.initial_correct and t.final_accuracy for t in traces)
    modes = Counter(t.failure_mode for t in traces)
    correction_tokens = sum(turn.billed_tokens for t in traces for turn in t.turns[1:])
    actions: Counter[str] = Counter()
    rewards: dict[str, list[float]] = defaultdict(list)
    trend: list[float | None] = []
    block: list[float] = []
    for i, t in enumerate(traces, 1):
        for u in t.updates:
            actions[u.arm] += 1
            rewards[u.arm].append(u.reward)
            block.append(u.reward)
        if i % REWARD_BLOCK == 0 or i == n:
            trend.append(_mean(block))
            block = []
    return {
        "n": n,
        "accuracy_turn0": initial / n if n else None,
        "accuracy_final": final / n if n else None,
        "right_to_wrong": r2w / n if n else None,
        "wrong_to_right": w2r / n if n else None,
        "n_right_to_wrong": r2w,
        "n_wrong_to_right": w2r,
        "failure_modes": {m: modes.get(m, 0) for m in FAILURE_MODES},
        "mean_turns": _mean([t.reprompts for t in traces]),
        "stopped_by": dict(Counter(t.stopped_by for t in traces)),
        "tokens_per_trace": _mean([t.total_tokens for t in traces]),
        "tokens_per_improvement": correction_tokens / w2r if w2r else None,
        "action_counts": dict(actions.most_common()),
        "mean_reward_per_action": {arm: _mean(rs) for arm, rs in sorted(rewards.items())},
        "reward_trend": {"block_traces": REWARD_BLOCK, "mean_reward": trend},
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A short plain-text table for the terminal."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    rows = [
        ("traces", str(summary["n"])),
        ("accuracy turn 0", pct(summary["accuracy_turn0"])),
        ("accuracy final", pct(summary["accuracy_final"])),
        ("right -> wrong", pct(summary["right_to_wrong"])),
        ("wrong -> right", pct(summary["wrong_to_right"])),
        ("mean reprompts", num(summary["mean_turns"])),
        ("tokens / trace", num(summary["tokens_per_trace"])),
        ("tokens / improvement", num(summary["tokens_per_improvement"])),
    ]
    rows += [(f"mode {m}", str(c)) for m, c in summary["failure_modes"].items() if c]
    top = list(summary["action_counts"].items())[:8]
    rows += [(f"action {a}", f"{c} (mean reward {summary['mean_reward_per_action'][a]:+.3f})") for a, c in top]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
