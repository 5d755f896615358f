"""The SQLite response cache: key sensitivity, hits and misses through the client, persistence."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import sqlite3
import subprocess
import sys
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


# --- failures: the cache never fails a call, reports once, and recovers ---------------------------


def answer(text: str) -> ChatResponse:
    return ChatResponse(text=text, model="m", usage=Usage(1, 1))


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "assay.llm.cache" and r.levelno >= logging.WARNING]


def test_a_lock_held_past_the_busy_timeout_drops_the_batch_once_reported_then_writing_resumes(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="assay.llm.cache")
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, flush_s=0.01, busy_timeout_s=0.05, write_attempts=2, retry_wait_s=0.01)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process writing for longer than the busy timeout
    for round_ in range(3):
        for i in range(5):
            cache.put(f"locked-{round_}-{i}", answer("x"))  # never raises
        cache.flush()  # returns: the batch was tried twice, then dropped
    assert cache.dropped == 15 and "database is locked" in cache.last_error
    assert cache.get("locked-0-0") is None  # dropped answers are misses (the call is made again)
    assert len(warnings := warnings_of(caplog)) == 1 and "cannot write the LLM cache" in warnings[0]

    blocker.execute("COMMIT")  # the condition clears
    cache.put("after", answer("after"))
    cache.flush()
    reader = ResponseCache(path)
    assert reader.get("after").text == "after" and cache.dropped == 15
    assert len(warnings_of(caplog)) == 1
    assert any("works again (15 answers were not cached)" in r.getMessage() for r in caplog.records)
    cache.close()
    reader.close()
    blocker.close()


def test_a_lock_released_while_retrying_loses_nothing_and_says_nothing(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, flush_s=0.01, busy_timeout_s=0.05, write_attempts=6, retry_wait_s=0.05)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.2, blocker.execute, ("COMMIT",))  # within the ~1.8 s of retries
    release.start()
    cache.put("k", answer("kept"))
    cache.flush()
    release.join()
    assert cache.dropped == 0 and warnings_of(caplog) == []
    cache.close()
    reader = ResponseCache(path)
    assert reader.get("k").text == "kept"
    reader.close()
    blocker.close()


def test_a_full_disk_never_fails_a_call_is_reported_once_and_clears(server, make_client, tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    client = make_client(fast_settings(server, cache=path))
    cache = client.cache
    cache.flush_s, cache.write_attempts, cache.retry_wait_s = 0.01, 2, 0.01
    assert client.complete_sync(ChatRequest.prompt("before", model="openai/test")).text == "echo: before"
    cache.flush()
    pages = cache._wdb.execute("PRAGMA page_count").fetchone()[0]
    cache._wdb.execute(f"PRAGMA max_page_count = {pages}")  # the writer's file cannot grow: SQLITE_FULL
    long = "x" * 6000  # every answer needs new pages (more than a page)
    for i in range(20):
        got = client.complete_sync(ChatRequest.prompt(f"full {i} {long}", model="openai/test"))
        assert got.text == f"echo: full {i} {long}" and not got.cached
        if i % 5 == 4:
            cache.flush()  # several batches fail, one after the other
    cache.flush()
    assert cache.dropped == 20 and "disk is full" in cache.last_error
    assert len(warnings := warnings_of(caplog)) == 1 and "database or disk is full" in warnings[0]

    cache._wdb.execute("PRAGMA max_page_count = 1073741823")  # space again
    for i in range(3):
        client.complete_sync(ChatRequest.prompt(f"later {i} {long}", model="openai/test"))
    client.close()
    reader = ResponseCache(path)
    assert len(reader) == 4 and len(warnings_of(caplog)) == 1
    assert reader.get(cache_key(ChatRequest.prompt("later 2 " + long, model="openai/test"), "openai", server.base_url))
    reader.close()


DISK_FULL_SCRIPT = r"""
import json, logging, os, resource, signal, sys
from assay.llm import ChatResponse, ResponseCache

records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger("assay.llm.cache").addHandler(handler)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, no signal
path = sys.argv[1]
cache = ResponseCache(path, flush_s=0.01, write_attempts=2, retry_wait_s=0.01)
big = "y" * 4000
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))  # files stop growing at 256 KiB
for i in range(200):
    cache.put(f"a{i}", ChatResponse(text=big, model="m"))
    if i % 20 == 19:
        cache.flush()
dropped = cache.dropped
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
cache.put("after", ChatResponse(text="after", model="m"))
cache.close()
reader = ResponseCache(path)
print(json.dumps({
    "dropped": dropped, "rows": len(reader), "after": reader.get("after") is not None,
    "warnings": [r.getMessage() for r in records if r.levelno >= logging.WARNING],
}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_a_real_file_size_limit_is_survived_in_another_process(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", DISK_FULL_SCRIPT, str(tmp_path / "c.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert 0 < out["dropped"] < 200 and out["after"]
    assert out["rows"] == 200 - out["dropped"] + 1  # what was not dropped is there, and what came after
    assert len(out["warnings"]) == 1 and "cannot write the LLM cache" in out["warnings"][0]


# --- two processes on one cache file ---------------------------------------------------------------

PER_PROCESS = 100  # own requests per process, and as many shared by both


def _cache_process(name: str, base_url: str, path: str, barrier, results) -> None:
    """One of two processes: N requests of its own and N shared ones, interleaved, through a client
    whose cache writes in small batches (many transactions, so the two writers contend for the lock);
    then, once both are done, the other process's requests, which must all be cache hits."""
    import traceback

    from assay.llm import LLMClient, LLMSettings

    try:
        settings = LLMSettings(model="openai/test", api_base=base_url, cache=path, max_concurrency=8, transport="lean")
        client = LLMClient(settings)
        client.cache.batch, client.cache.flush_s = 8, 0.01
        own = [ChatRequest.prompt(f"{name} {i}") for i in range(PER_PROCESS)]
        shared = [ChatRequest.prompt(f"shared {i}") for i in range(PER_PROCESS)]
        requests = [r for pair in zip(own, shared, strict=True) for r in pair]

        async def ask(batch):
            return await asyncio.gather(*(client.complete(r) for r in batch))

        barrier.wait()  # both start together
        started = time.perf_counter()
        answers = asyncio.run(ask(requests))
        client.cache.flush()
        seconds = time.perf_counter() - started
        wrong = sum(a.text != "echo: " + r.messages[-1]["content"] for a, r in zip(answers, requests, strict=True))
        barrier.wait()  # both have written everything
        other = "b" if name == "a" else "a"
        theirs = asyncio.run(ask([ChatRequest.prompt(f"{other} {i}") for i in range(PER_PROCESS)]))
        results.put(
            {
                "name": name,
                "wrong": wrong,
                "seconds": seconds,
                "dropped": client.cache.dropped,
                "theirs_cached": sum(a.cached for a in theirs),
            }
        )
        client.close()
    except BaseException:
        results.put({"name": name, "error": traceback.format_exc()})


def test_two_processes_share_one_cache_file(server, tmp_path):
    path = tmp_path / "shared.sqlite"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2, timeout=60), context.Queue()
    processes = [
        context.Process(target=_cache_process, args=(name, server.base_url, str(path), barrier, results))
        for name in ("a", "b")
    ]
    for process in processes:
        process.start()
    try:
        reports = {r["name"]: r for r in (results.get(timeout=90) for _ in processes)}
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert all("error" not in r for r in reports.values()), [r.get("error") for r in reports.values()]
    for report in reports.values():
        assert report["wrong"] == 0 and report["dropped"] == 0
        assert report["theirs_cached"] == PER_PROCESS  # each sees all of the other's answers
    reader = ResponseCache(path)
    assert len(reader) == 3 * PER_PROCESS  # no row lost: a's own, b's own, the shared ones once
    reader.close()
    # each shared request was asked once or, when both missed it at the same moment, twice
    assert 3 * PER_PROCESS <= server.count <= 4 * PER_PROCESS
    print(f"\ntwo processes: {[round(r['seconds'], 2) for r in reports.values()]} s, {server.count} server calls")
