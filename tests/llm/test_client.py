"""The client: sync wrapper, event loops, usage and cost accounting, defaults."""

from __future__ import annotations

import asyncio

import pytest

from assay.llm import ChatRequest, LLMClient, LLMError, LLMSettings, Prices, UsageTracker
from assay.llm.testserver import Reply
from tests.llm.conftest import fast_settings


def test_sync_wrapper_without_and_inside_a_running_loop(server, make_client):
    client = make_client(fast_settings(server))
    assert client.complete_sync(ChatRequest.prompt("plain")).text == "echo: plain"

    async def from_async_code():  # blocking, but it works: the sync calls run on the client's own loop
        return client.complete_sync(ChatRequest.prompt("nested")).text

    assert asyncio.run(from_async_code()) == "echo: nested"


def test_one_client_across_several_event_loops(server, tmp_path):
    client = LLMClient(fast_settings(server, cache=tmp_path / "c.sqlite"))
    assert asyncio.run(client.complete(ChatRequest.prompt("one"))).text == "echo: one"
    assert asyncio.run(client.complete(ChatRequest.prompt("two"))).text == "echo: two"
    assert asyncio.run(client.complete(ChatRequest.prompt("one"))).cached
    assert client.complete_sync(ChatRequest.prompt("three")).text == "echo: three"

    async def close():
        await client.aclose()

    asyncio.run(close())
    with pytest.raises(LLMError, match="closed"):
        client.complete_sync(ChatRequest.prompt("four"))
    assert server.count == 3


def test_async_context_manager_and_empty_model_uses_the_settings(server):
    async def main():
        async with LLMClient(fast_settings(server, model="openai/configured")) as client:
            return await client.complete(ChatRequest(model="", messages=[{"role": "user", "content": "hi"}]))

    answer = asyncio.run(main())
    assert answer.model == "configured" and server.requests[0].body["model"] == "configured"


def test_usage_and_cost_accounting(server, make_client, tmp_path):
    prices = Prices(input_per_1m=2.0, output_per_1m=10.0)
    client = make_client(fast_settings(server, prices=prices, cache=tmp_path / "c.sqlite"))
    server.push(Reply(content="a", usage=(1000, 100)), Reply.server_error(), Reply(content="b", usage=(500, 50)))
    first = client.complete_sync(ChatRequest.prompt("one"))
    second = client.complete_sync(ChatRequest.prompt("two"))
    hit = client.complete_sync(ChatRequest.prompt("one"))
    assert first.cost_usd == pytest.approx(1000 * 2e-6 + 100 * 1e-5)
    assert second.cost_usd == pytest.approx(500 * 2e-6 + 50 * 1e-5)
    assert hit.cached and hit.cost_usd == 0.0
    summary = client.usage.summary()
    assert summary == {
        "requests": 3,
        "cache_hits": 1,
        "api_calls": 2,
        "prompt_tokens": 1500,
        "completion_tokens": 150,
        "retries": 1,
        "errors": 0,
        "cost_usd": pytest.approx(0.0045),
        "by_model": {
            "openai/test": {
                "requests": 3,
                "cache_hits": 1,
                "api_calls": 2,
                "prompt_tokens": 1500,
                "completion_tokens": 150,
                "cost_usd": pytest.approx(0.0045),
            }
        },
    }


def test_prices_from_litellm_for_vendor_apis_and_none_for_other_endpoints():
    vendor = UsageTracker(LLMSettings(model="openai/gpt-4o-mini"))
    prompt, completion = vendor.price("openai/gpt-4o-mini")  # LiteLLM's bundled table, offline
    assert 0 < prompt < completion < 1e-4
    proxied = UsageTracker(LLMSettings(model="openai/gpt-4o-mini", api_base="http://x/v1"))
    assert proxied.price("openai/gpt-4o-mini") == (0.0, 0.0)
    assert vendor.price("local/smollm2") == (0.0, 0.0)
    assert vendor.price("openai/no-such-model-anywhere") == (0.0, 0.0)


def test_missing_key_fails_when_the_client_is_made(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LLMError, match="ANTHROPIC_API_KEY"):
        LLMClient(LLMSettings(model="anthropic/claude-x"))
