"""The SQLite response cache: key sensitivity, hits and misses through the client, persistence."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from assay.llm import ChatRequest, ChatResponse, ResponseCache, Usage, cache_key
from tests.llm.conftest import fast_settings

BASE = ChatRequest.prompt("What rhymes with orange?", system="Be brief.", model="openai/test")


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "What rhymes with purple?"}]},
        {"messages": [*BASE.messages, {"role": "assistant", "content": "nothing"}]},
        {"model": "openai/other"},
        {"temperature": 0.7},
        {"max_tokens": 10},
        {"top_p": 0.9},
        {"seed": 1},
        {"json_schema": {"type": "object"}},
        {"extra": {"_candidate": 2}},
        {"extra": {"presence_penalty": 0.5}},
    ],
)
def test_everything_that_changes_the_answer_changes_the_key(change):
    assert cache_key(BASE.replace(**change), "openai") != cache_key(BASE, "openai")


def test_backend_and_endpoint_change_the_key_but_number_spelling_does_not():
    key = cache_key(BASE, "openai", "http://a/v1")
    assert key != cache_key(BASE, "openai", "http://b/v1")
    assert key != cache_key(BASE, "litellm", "http://a/v1")
    assert cache_key(BASE.replace(temperature=0), "openai", "http://a/v1") == key  # 0 == 0.0
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert cache_key(BASE.replace(json_schema=schema), "openai") != cache_key(
        BASE.replace(json_schema=schema, schema_name="other"), "openai"
    )


def test_hit_and_miss_through_the_client_and_settings_that_do_not_change_the_answer(server, make_client, tmp_path):
    path = tmp_path / "llm.sqlite"
    client = make_client(fast_settings(server, cache=path))
    first = client.complete_sync(BASE)
    again = client.complete_sync(BASE)
    assert server.count == 1
    assert (first.cached, again.cached) == (False, True)
    assert again.text == first.text == "echo: What rhymes with orange?"
    assert again.usage == first.usage and again.cost_usd == 0.0
    assert client.cache.hits == 1 and client.usage.summary()["cache_hits"] == 1
    client.close()

    # another client on the same file, with different timeout / concurrency / rate limit: still a hit
    other = make_client(fast_settings(server, cache=path, timeout_s=3, max_concurrency=2, max_qps=50, max_retries=1))
    assert other.complete_sync(BASE).cached
    assert not other.complete_sync(BASE.replace(temperature=0.5)).cached
    assert server.count == 2


def test_sampled_requests_are_cached_per_seed_and_candidate(server, make_client, tmp_path):
    client = make_client(fast_settings(server, cache=tmp_path / "c.sqlite"))
    hot = BASE.replace(temperature=0.9, seed=1)
    client.complete_sync(hot)
    assert client.complete_sync(hot).cached
    assert not client.complete_sync(hot.replace(seed=2)).cached
    assert not client.complete_sync(hot.replace(extra={"_candidate": 1})).cached
    assert server.count == 3
    # cache-only "_" keys are not sent; other extras are
    client.complete_sync(hot.replace(extra={"_candidate": 2, "presence_penalty": 0.25}))
    body = server.requests[-1].body
    assert body["presence_penalty"] == 0.25 and "_candidate" not in body


def test_identical_requests_in_flight_share_one_call(server, make_client, tmp_path):
    from assay.llm.testserver import Reply

    server.push(Reply.slow(0.2, "shared"))
    client = make_client(fast_settings(server, cache=tmp_path / "c.sqlite"))

    async def both():
        return await asyncio.gather(client.complete(BASE), client.complete(BASE))

    first, second = asyncio.run(both())
    assert server.count == 1
    assert first.text == second.text == "shared"
    assert sorted([first.cached, second.cached]) == [False, True]


def eventually(check, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return result


def test_writes_are_batched_but_reach_the_file(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, batch=3, flush_s=60)
    answer = ChatResponse(text="hi", model="m", usage=Usage(3, 1), cost_usd=0.5, latency_s=0.1)
    cache.put("k1", answer)
    assert cache.get("k1").text == "hi"  # served from the queue
    reader = ResponseCache(path)
    time.sleep(0.1)
    assert reader.get("k1") is None  # not written yet: the batch is not full and 60 s have not passed
    cache.put("k2", answer)
    cache.put("k3", answer)  # the third fills the batch
    got = eventually(lambda: reader.get("k3"))
    assert got is not None and got.cached and got.cost_usd == 0.0 and got.usage == Usage(3, 1)
    cache.put("k4", answer)
    cache.flush()
    assert reader.get("k4") is not None
    cache.put("k5", answer)
    cache.close()  # close writes the rest
    assert reader.get("k5") is not None and len(reader) == 5
    reader.close()
    with pytest.raises(RuntimeError, match="closed"):
        cache.put("k6", answer)


def test_the_clock_writes_an_idle_queue(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, flush_s=0.05)
    reader = ResponseCache(path)
    for key in ("a", "b"):  # the second after the writer has gone idle again
        cache.put(key, ChatResponse(text=key, model="m"))
        assert eventually(lambda key=key: reader.get(key)) is not None
    cache.close()
    reader.close()


def test_cache_is_safe_from_many_threads(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite", batch=16)

    def work(t: int) -> None:
        for i in range(100):
            cache.put(f"{t}-{i}", ChatResponse(text=f"{t}-{i}", model="m"))
            assert cache.get(f"{t}-{i}").text == f"{t}-{i}"

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 800
    cache.close()


def test_unwritable_cache_path_is_a_one_line_error(tmp_path):
    from assay.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot open the LLM cache"):
        ResponseCache(blocker / "sub" / "c.sqlite")
