"""Retries: backoff arithmetic, 429/500/timeouts/connection errors against the real server, giving up."""

from __future__ import annotations

import random
import socket
import time

import pytest

from assay.llm import ChatRequest, LLMError
from assay.llm.retry import Backoff, parse_retry_after
from assay.llm.testserver import Reply
from tests.llm.conftest import fast_settings

REQUEST = ChatRequest.prompt("hello")


def test_backoff_doubles_from_start_up_to_the_cap():
    backoff = Backoff(start_s=0.5, cap_s=8.0, jitter="none")
    assert [backoff.delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


@pytest.mark.parametrize("jitter,low", [("equal", 0.5), ("full", 0.0)])
def test_jittered_delays_stay_within_their_band(jitter, low):
    backoff = Backoff(start_s=0.5, cap_s=8.0, jitter=jitter, rng=random.Random(0))
    for attempt in range(8):
        base = min(8.0, 0.5 * 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(low * base <= d <= base for d in delays)
        assert max(delays) - min(delays) > 0.2 * base  # it is jittered


def test_retry_after_is_honoured_and_capped():
    backoff = Backoff(start_s=0.1, cap_s=2.0, jitter="none")
    assert backoff.delay(0, retry_after=1.5) == 1.5
    assert backoff.delay(0, retry_after=60) == 2.0
    assert backoff.delay(3, retry_after=0.01) == 0.8  # never shorter than the backoff


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    from email.utils import formatdate

    assert 50 < parse_retry_after({"retry-after": formatdate(time.time() + 60, usegmt=True)}) <= 60


@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_429_and_500_are_retried_with_the_backoff_delays(server, make_client, transport):
    server.push(Reply.rate_limited(), Reply.server_error(500), Reply.server_error(503), Reply(content="finally"))
    client = make_client(fast_settings(server, transport=transport, backoff_start_s=0.05, backoff_cap_s=0.1))
    answer = client.complete_sync(REQUEST)
    assert answer.text == "finally" and server.count == 4
    times = [r.received_at for r in server.requests]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    for gap, delay in zip(gaps, [0.05, 0.1, 0.1], strict=True):  # start 0.05, doubling, cap 0.1
        assert delay <= gap < delay + 0.5
    assert client.usage.summary()["retries"] == 3


def test_retry_after_header_sets_the_wait(server, make_client):
    server.push(Reply.rate_limited(retry_after=0.3))
    client = make_client(fast_settings(server, backoff_start_s=0.01, backoff_cap_s=1.0))
    client.complete_sync(REQUEST)
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.3


@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_giving_up_says_how_many_attempts_and_the_last_status(server, make_client, transport):
    server.responder = lambda body: Reply.server_error(502)
    client = make_client(fast_settings(server, transport=transport, max_retries=2))
    with pytest.raises(LLMError) as err:
        client.complete_sync(REQUEST)
    message = str(err.value)
    assert "gave up after 3 attempts" in message and "HTTP 502" in message and "\n" not in message
    assert message.startswith("openai/test:")
    assert server.count == 3
    assert client.usage.summary()["errors"] == 1


@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_client_errors_are_not_retried(server, make_client, transport):
    server.push(Reply(status=400, body={"error": {"message": "messages: bad role 'robot'"}}))
    client = make_client(fast_settings(server, transport=transport))
    with pytest.raises(LLMError, match=r"HTTP 400: .*bad role"):
        client.complete_sync(REQUEST)
    assert server.count == 1


@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_a_slow_answer_times_out_and_is_retried(server, make_client, transport):
    server.push(Reply.slow(3.0, "too late"))
    client = make_client(fast_settings(server, transport=transport, timeout_s=0.3))
    started = time.perf_counter()
    answer = client.complete_sync(REQUEST)
    assert answer.text == "echo: hello"
    assert time.perf_counter() - started < 2.5
    assert server.count == 2 and client.usage.summary()["retries"] == 1


@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_connection_errors_are_retried_then_reported(make_client, transport):
    from assay.llm import LLMClient, LLMSettings

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = LLMSettings(
        model="openai/test",
        api_base=f"http://127.0.0.1:{port}/v1",
        transport=transport,
        max_retries=1,
        backoff_start_s=0.01,
        jitter="none",
    )
    client = make_client(settings)
    assert isinstance(client, LLMClient)
    with pytest.raises(LLMError, match="gave up after 2 attempts; last error: connection error"):
        client.complete_sync(REQUEST)
