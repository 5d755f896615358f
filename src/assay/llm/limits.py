"""Rate and concurrency limits: an async token bucket (requests per second) and the semaphore.

The bucket hands out reservations: each caller takes a token now, possibly driving the balance
negative, and sleeps until its token would have been refilled. That is FIFO-fair, needs no polling
loop, and is safe from several threads and event loops (the arithmetic is under a threading lock;
only the sleep is async).
"""

from __future__ import annotations

import asyncio
import threading
import time


class TokenBucket:
    """At most `rate` acquisitions per second on average, bursts of up to `burst` (default max(1, rate))."""

    def __init__(self, rate: float, burst: float | None = None):
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token; return the seconds to wait before using it (0.0 if one was available)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


def concurrency_limit(max_concurrency: int) -> asyncio.Semaphore:
    """The in-flight limit (one per event loop: asyncio primitives belong to one loop)."""
    return asyncio.Semaphore(max_concurrency)
