"""Concurrency and rate limits, measured by the server (requests in flight, arrival times)."""

from __future__ import annotations

import asyncio
import time

import pytest

from assay.llm import ChatRequest
from assay.llm.limits import TokenBucket
from assay.llm.testserver import Reply
from tests.llm.conftest import fast_settings


@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_concurrency_limit_is_respected(server, make_client, transport):
    server.responder = lambda body: Reply.slow(0.05, "ok")
    client = make_client(fast_settings(server, transport=transport, max_concurrency=3))

    async def many():
        await asyncio.gather(*(client.complete(ChatRequest.prompt(f"q{i}")) for i in range(15)))
        await client.aclose()

    asyncio.run(many())
    assert server.count == 15
    assert server.max_in_flight == 3


def test_qps_limit_spaces_requests(server, make_client):
    client = make_client(fast_settings(server, max_qps=20))  # burst 20, then one every 50 ms

    async def many():
        await asyncio.gather(*(client.complete(ChatRequest.prompt(f"q{i}")) for i in range(40)))
        await client.aclose()

    started = time.perf_counter()
    asyncio.run(many())
    elapsed = time.perf_counter() - started
    assert 0.9 <= elapsed < 3.0  # 20 at once, 20 more at 20/s
    times = sorted(r.received_at for r in server.requests)
    # in any 0.5 s window after the burst, at most ~10 (+1 for the window's edge) requests
    late = [t for t in times if t > times[0] + 0.1]
    assert all(sum(1 for u in late if t <= u < t + 0.5) <= 11 for t in late)


def test_token_bucket_reservations():
    bucket = TokenBucket(rate=10, burst=2)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([0.1, 0.2, 0.3], abs=0.01)
    assert TokenBucket(rate=0.5).burst == 1.0
    with pytest.raises(ValueError):
        TokenBucket(rate=0)


def test_retries_take_tokens_too(server, make_client):
    server.push(Reply.rate_limited(), Reply.rate_limited())
    client = make_client(fast_settings(server, max_qps=2, backoff_start_s=0.0, backoff_cap_s=0.0))
    client.complete_sync(ChatRequest.prompt("q"))  # 3 attempts: the burst of 2, then one 0.5 s later
    first, second, third = (r.received_at for r in server.requests)
    assert second - first < 0.2 and third - first >= 0.45
