"""Batching of concurrent score requests onto one model.

Requests wait in a queue; one worker takes everything waiting (up to `max_texts` texts, waiting
at most `wait_s` for more once it has one), scores all of it with one call of `score_fn` in the
model's own thread, and hands each request its own results. Under load the queue fills while
the model works, so batches grow by themselves; a lone request waits at most `wait_s`.

The queue is bounded: past `max_waiting` texts waiting (besides the batch being scored) a request
is refused with `Overloaded` (503 with Retry-After) instead of waiting ever longer, so memory and
latency stay bounded however fast requests come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ScoreFn = Callable[[list[str]], list[dict[str, Any]]]
RETRY_AFTER_S = 1  # what a refused client is told to wait: about one model call


class Overloaded(Exception):
    """Too much work is waiting: answer 503 with a Retry-After header."""

    retry_after = RETRY_AFTER_S


class Batcher:
    def __init__(
        self, score_fn: ScoreFn, executor: ThreadPoolExecutor, max_texts: int, wait_s: float, max_waiting: int
    ):
        self.score_fn = score_fn
        self.executor = executor
        self.max_texts = max_texts
        self.wait_s = wait_s
        self.max_waiting = max_waiting
        self.waiting = 0  # texts in the queue
        self.refused = 0  # requests refused with Overloaded
        self.batches = 0  # model calls made
        self.texts = 0  # texts scored
        self.requests = 0  # requests answered
        self._queue: asyncio.Queue[tuple[list[str], asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    def check(self, n: int = 1) -> None:
        """Overloaded if `n` more texts would take the queue past `max_waiting` (an empty queue
        takes any request, however many texts it has)."""
        if self.waiting and self.waiting + n > self.max_waiting:
            self.refused += 1
            raise Overloaded(
                f"{self.waiting} texts are waiting to be scored (the limit is {self.max_waiting}): try again"
            )

    async def score(self, texts: list[str]) -> list[dict[str, Any]]:
        """The results for `texts`, scored together with whatever else is waiting (Overloaded: see
        `check`)."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called")
        self.check(len(texts))
        future = asyncio.get_running_loop().create_future()
        self.waiting += len(texts)
        self._queue.put_nowait((texts, future))
        return await future

    async def _next_batch(self) -> list[tuple[list[str], asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        count = len(batch[0][0])
        self.waiting -= count
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while count < self.max_texts:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            batch.append(item)
            count += len(item[0])
            self.waiting -= len(item[0])
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [(texts, future) for texts, future in await self._next_batch() if not future.done()]
            if not batch:  # every waiting client went away
                continue
            texts = [text for request, _ in batch for text in request]
            try:
                results = await loop.run_in_executor(self.executor, self.score_fn, texts)
            except Exception as exc:  # the same error for every request of the batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.texts += len(texts)
            start = 0
            for request, future in batch:
                if not future.done():
                    future.set_result(results[start : start + len(request)])
                    self.requests += 1
                start += len(request)

    def stats(self) -> dict[str, float]:
        return {
            "score_requests": self.requests,
            "score_batches": self.batches,
            "scored_texts": self.texts,
            "mean_batch_texts": self.texts / self.batches if self.batches else 0.0,
            "queued_texts": self.waiting,
            "score_refused": self.refused,
        }
