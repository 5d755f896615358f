"""Retries with exponential backoff around one backend attempt.

Attempt n (0-based) that fails retryably waits base = min(cap, start * 2**n) with jitter:
"equal" (base/2 + U(0, base/2), the default: spreads clients out but never retries early),
"full" (U(0, base)) or "none". A server's Retry-After is honoured (capped at `cap`): the wait is
at least that long. After `max_retries` retries the call fails with an LLMError that says how
many attempts were made and what the last failure was.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

from assay.llm.types import LLMError, RetryableLLMError

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


@dataclass
class Backoff:
    start_s: float = 0.5
    cap_s: float = 8.0
    jitter: str = "equal"  # "equal" | "full" | "none"
    rng: random.Random = field(default_factory=random.Random)

    def base(self, attempt: int) -> float:
        return min(self.cap_s, self.start_s * (2.0 ** min(attempt, 62)))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (0-based)."""
        base = self.base(attempt)
        if self.jitter == "equal":
            wait = base / 2 + self.rng.uniform(0, base / 2)
        elif self.jitter == "full":
            wait = self.rng.uniform(0, base)
        else:
            wait = base
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.cap_s))
        return wait


def parse_retry_after(headers) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date); None if absent/bad."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            import datetime

            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.datetime.now(when.tzinfo)).total_seconds())
    except (TypeError, ValueError, AttributeError):
        return None


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    max_retries: int,
    backoff: Backoff,
    timeout_s: float | None,
    label: str,
    before_attempt: Callable[[], Awaitable[None]] | None = None,
    on_retry: Callable[[int, float, RetryableLLMError], None] | None = None,
) -> T:
    """Run `attempt()` until it succeeds, fails for good (LLMError), or `max_retries` retries are spent.

    Each attempt is bounded by `timeout_s` (a timeout is retryable) and preceded by `before_attempt()`
    (the rate limit: retries take tokens too). `on_retry(attempt, wait_s, error)` sees each retry.
    """
    for n in range(max_retries + 1):
        if before_attempt is not None:
            await before_attempt()
        try:
            if timeout_s is None:
                return await attempt()
            async with asyncio.timeout(timeout_s):
                return await attempt()
        except TimeoutError:
            error = RetryableLLMError(f"timed out after {timeout_s:g} s")
        except RetryableLLMError as exc:
            error = exc
        if n == max_retries:
            break
        wait = backoff.delay(n, error.retry_after)
        if on_retry is not None:
            on_retry(n, wait, error)
        await asyncio.sleep(wait)
    attempts = max_retries + 1
    raise LLMError(
        f"{label}: gave up after {attempts} attempt{'s' * (attempts != 1)}; last error: {error}", kind="exhausted"
    )
