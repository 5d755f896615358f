"""Usage and cost accounting: thread-safe totals per model.

Cost of a call = prompt_tokens * input price + completion_tokens * output price, USD. Prices come
from `LLMSettings.prices` (per 1M tokens) for the configured model, else from LiteLLM's bundled
price table (read offline, looked up once per model) for the vendors' own APIs, else 0. A custom
`api_base` is somebody else's server: LiteLLM's prices do not apply there, so set `prices`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from assay.llm.settings import LLMSettings, backend_kind
from assay.llm.types import Usage


@dataclass
class _ModelTotals:
    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


def litellm_prices(model: str) -> tuple[float, float] | None:
    """(USD per prompt token, USD per completion token) from LiteLLM's table, or None if unknown."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the table
    try:
        import litellm
    except ImportError:
        return None
    names = [model.removeprefix("litellm/")]
    if "/" in names[0]:
        names.append(names[0].split("/", 1)[1])
    for name in names:
        try:
            prompt, completion = litellm.cost_per_token(model=name, prompt_tokens=1, completion_tokens=1)
        except Exception:  # litellm raises assorted exceptions for unknown models
            continue
        return float(prompt), float(completion)
    return None


class UsageTracker:
    """Counts requests, cache hits, retries, errors, tokens and cost (by model)."""

    def __init__(self, settings: LLMSettings | None = None):
        self._settings = settings or LLMSettings()
        self._lock = threading.Lock()
        self._by_model: dict[str, _ModelTotals] = {}
        self._prices: dict[str, tuple[float, float]] = {}
        self.retries = 0
        self.errors = 0

    def price(self, model: str) -> tuple[float, float]:
        """USD per (prompt token, completion token) for `model`, looked up once."""
        found = self._prices.get(model)
        if found is None:
            found = self._lookup(model)
            self._prices[model] = found
        return found

    def _lookup(self, model: str) -> tuple[float, float]:
        s = self._settings
        if s.prices is not None and model == s.model:
            return s.prices.input_per_1m / 1e6, s.prices.output_per_1m / 1e6
        kind = backend_kind(model, s.api_base)
        if kind == "local" or (s.api_base and kind != "litellm"):
            return 0.0, 0.0
        return litellm_prices(model) or (0.0, 0.0)

    def record_call(self, model: str, usage: Usage) -> float:
        """Count one answered API call; return its cost in USD."""
        per_prompt, per_completion = self.price(model)
        cost = usage.prompt_tokens * per_prompt + usage.completion_tokens * per_completion
        with self._lock:
            totals = self._by_model.get(model) or self._by_model.setdefault(model, _ModelTotals())
            totals.requests += 1
            totals.prompt_tokens += usage.prompt_tokens
            totals.completion_tokens += usage.completion_tokens
            totals.cost_usd += cost
        return cost

    def record_hit(self, model: str) -> None:
        with self._lock:
            totals = self._by_model.get(model) or self._by_model.setdefault(model, _ModelTotals())
            totals.requests += 1
            totals.cache_hits += 1

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def record_error(self) -> None:
        with self._lock:
            self.errors += 1

    def summary(self) -> dict:
        """{"requests", "cache_hits", "api_calls", "retries", "errors", "prompt_tokens",
        "completion_tokens", "cost_usd", "by_model": {model: {...same per model...}}}."""
        with self._lock:
            by_model = {
                name: {
                    "requests": t.requests,
                    "cache_hits": t.cache_hits,
                    "api_calls": t.requests - t.cache_hits,
                    "prompt_tokens": t.prompt_tokens,
                    "completion_tokens": t.completion_tokens,
                    "cost_usd": round(t.cost_usd, 8),
                }
                for name, t in self._by_model.items()
            }
            retries, errors = self.retries, self.errors
        total = {
            key: sum(m[key] for m in by_model.values())
            for key in ("requests", "cache_hits", "api_calls", "prompt_tokens", "completion_tokens")
        }
        return {
            **total,
            "retries": retries,
            "errors": errors,
            "cost_usd": round(sum(m["cost_usd"] for m in by_model.values()), 8),
            "by_model": by_model,
        }
