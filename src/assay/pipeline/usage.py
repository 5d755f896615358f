"""Sums and differences of LLM usage summaries (`LLMClient.usage.summary()`: numbers, nested per
model): a step's share of a shared client, and the usage of the Ray engine's actors as one."""

from __future__ import annotations

from typing import Any


def usage_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """`after - before` for every number of a usage summary (nested per model), rounded like it."""
    return _combine(after, before, -1)


def usage_sum(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """`a + b` for every number of two usage summaries: the usage of several clients (the Ray
    actors') as one."""
    return _combine(a or {}, b, 1)


def _combine(a: dict[str, Any], b: dict[str, Any], sign: int) -> dict[str, Any]:
    """`a + sign * b` for the numbers of two nested dicts (a missing number counts 0); other values
    are a's (b's when a lacks the key)."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    out: dict[str, Any] = {}
    for key in dict.fromkeys([*a, *b]):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) or isinstance(y, dict):
            out[key] = _combine(x if isinstance(x, dict) else {}, y if isinstance(y, dict) else {}, sign)
        elif number(x) or number(y):
            value = (x if number(x) else 0) + sign * (y if number(y) else 0)
            out[key] = round(value, 8) if isinstance(value, float) else value
        else:
            out[key] = x if key in a else y
    return out
