"""LLM client throughput: requests/s through assay's LLMClient (cache miss and cache hit) against the
scripted OpenAI-compatible server, at concurrency 1/16/64, beside raw rates measured in the same run.

The server (assay.llm.testserver, echo answers, no recording) runs in its own process, so on a
2-core machine the client and the server each have a core. Rates, all against that server:

  raw server          a minimal client: keep-alive sockets sending one pre-encoded request each in
                      turn (no HTTP library): what the server can deliver, the ceiling for any client
  bare <transport>    the same HTTP stack as the client's transport with nothing of assay around it
                      (the openai SDK's call; an aiohttp POST + json for the lean transport)
  client <transport>  LLMClient.complete: cache (SQLite) -> limits -> retries -> accounting;
                      miss = every prompt new (lookup, call, insert), hit = every prompt cached;
                      "no cache" = the same without --cache (what the cache costs per request)

The ratios say what assay's layer costs (client / bare transport) and how close a Python HTTP
client gets to the server's rate (client / raw server). Goal (issue): >= 500 requests/s at
concurrency 64 on a cache miss, >= 0.8 of the raw rate.

    python benchmarks/llm_throughput.py            # writes benchmarks/results/llm_throughput.json
    python benchmarks/llm_throughput.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from assay.llm import ChatRequest, LLMClient, LLMSettings
from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)

CONCURRENCY = (1, 16, 64)
MODEL = "openai/bench"
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "assay.llm.testserver"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


async def measure(worker_call, concurrency: int, seconds: float) -> float:
    """Requests/s of `concurrency` tasks, each awaiting `worker_call(worker, n)` in a loop, over `seconds`
    after a short warm-up (connections opened, SDK paths imported)."""
    counter = itertools.count()

    async def run(worker: int, until: float) -> int:
        done = 0
        while time.perf_counter() < until:
            await worker_call(worker, next(counter))
            done += 1
        return done

    warm = time.perf_counter() + min(0.3, seconds)
    await asyncio.gather(*(run(w, warm) for w in range(concurrency)))
    started = time.perf_counter()
    done = await asyncio.gather(*(run(w, started + seconds) for w in range(concurrency)))
    return sum(done) / (time.perf_counter() - started)


def body(prompt: str) -> dict:
    return {"model": "bench", "messages": [{"role": "user", "content": prompt}], "temperature": 0.0}


async def raw_server_rate(base_url: str, concurrency: int, seconds: float) -> float:
    host, port = re.match(r"http://([^:/]+):(\d+)", base_url).groups()
    payload = json.dumps(body("hello raw")).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    conns = [await asyncio.open_connection(host, int(port)) for _ in range(concurrency)]

    async def call(worker: int, n: int) -> None:
        reader, writer = conns[worker]
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(int(_LENGTH.search(head).group(1)))

    try:
        return await measure(call, concurrency, seconds)
    finally:
        for _, writer in conns:
            writer.close()


async def bare_sdk_rate(base_url: str, concurrency: int, seconds: float, on_aiohttp: bool) -> float:
    import httpx
    import openai

    from assay.llm.backends.http import http_client

    if on_aiohttp:
        http = http_client(concurrency, 60)
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http = httpx.AsyncClient(limits=limits, timeout=60)
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0, http_client=http)

    async def call(worker: int, n: int) -> None:
        out = await sdk.chat.completions.create(**body(f"bare {n}"))
        assert out.choices[0].message.content

    try:
        return await measure(call, concurrency, seconds)
    finally:
        await sdk.close()


async def bare_aiohttp_rate(base_url: str, concurrency: int, seconds: float) -> float:
    from assay.llm.backends.http import new_session

    session = new_session(concurrency)
    url = base_url + "/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer not-needed"}

    async def call(worker: int, n: int) -> None:
        async with session.post(url, data=json.dumps(body(f"bare {n}")), headers=headers) as resp:
            data = json.loads(await resp.read())
        assert data["choices"][0]["message"]["content"]

    try:
        return await measure(call, concurrency, seconds)
    finally:
        await session.close()


async def client_rates(settings: LLMSettings, concurrency: int, seconds: float) -> tuple[float, float | None]:
    """(cache-miss rate, cache-hit rate) through one LLMClient; without a cache: (rate, None)."""
    client = LLMClient(settings.model_copy(update={"max_concurrency": concurrency}))
    tag = f"{settings.transport} c{concurrency} {time.perf_counter()}"  # new prompts on every run
    seen = itertools.count()
    try:

        async def miss(worker: int, n: int) -> None:
            out = await client.complete(ChatRequest.prompt(f"{tag} {n}", model=MODEL))
            assert not out.cached and out.text
            next(seen)

        miss_rate = await measure(miss, concurrency, seconds)
        made = next(seen)
        if client.cache is None:
            return miss_rate, None

        async def hit(worker: int, n: int) -> None:
            out = await client.complete(ChatRequest.prompt(f"{tag} {n % made}", model=MODEL))
            assert out.cached

        hit_rate = await measure(hit, concurrency, seconds)
        usage = client.usage.summary()
        assert usage["errors"] == 0 and usage["retries"] == 0, usage
        return miss_rate, hit_rate
    finally:
        await client.aclose()


async def run_all(base_url: str, cache: Path, seconds: float, repeats: int) -> dict:
    """{row: {"c1": req/s, ...}}: the median of `repeats` runs; the rows of one concurrency take turns,
    so a slow moment of a shared machine does not land on one row only."""
    samples: dict[str, dict[str, list[float]]] = {}

    def put(name: str, conc: int, rate: float) -> None:
        samples.setdefault(name, {}).setdefault(f"c{conc}", []).append(rate)
        print(f"  {name:<36} c={conc:<3} {rate:9.0f} req/s", flush=True)

    for conc in CONCURRENCY:
        for _ in range(repeats):
            put("raw server (raw sockets)", conc, await raw_server_rate(base_url, conc, seconds))
            put("bare openai SDK on httpx", conc, await bare_sdk_rate(base_url, conc, seconds, on_aiohttp=False))
            put("bare openai SDK on aiohttp", conc, await bare_sdk_rate(base_url, conc, seconds, on_aiohttp=True))
            put("bare aiohttp POST", conc, await bare_aiohttp_rate(base_url, conc, seconds))
            for transport in ("sdk", "lean"):
                settings = LLMSettings(model=MODEL, api_base=base_url, transport=transport, cache=cache)
                miss, hit = await client_rates(settings, conc, seconds)
                put(f"client, {transport} transport, cache miss", conc, miss)
                put(f"client, {transport} transport, cache hit", conc, hit)
            no_cache = LLMSettings(model=MODEL, api_base=base_url, transport="lean")
            put("client, lean transport, no cache", conc, (await client_rates(no_cache, conc, seconds))[0])
    return {name: {c: statistics.median(v) for c, v in per.items()} for name, per in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 0.2 s run per measurement (a smoke run)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per run (default 1.0)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement, median taken (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "llm_throughput.json")
    args = parser.parse_args()
    seconds = args.seconds or (0.2 if args.quick else 1.0)
    repeats = args.repeats or (1 if args.quick else 3)

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    proc, base_url = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = asyncio.run(run_all(base_url, Path(tmp) / "llm-cache.sqlite", seconds, repeats))
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    raw = rows["raw server (raw sockets)"]
    bare_for = {"sdk": "bare openai SDK on aiohttp", "lean": "bare aiohttp POST"}
    ratios, goals = {}, {}
    for transport, bare in bare_for.items():
        for name in [n for n in rows if n.startswith(f"client, {transport} transport")]:
            ratios[name] = {
                f"c{c}": {
                    "vs_bare_transport": rows[name][f"c{c}"] / rows[bare][f"c{c}"],
                    "vs_raw_server": rows[name][f"c{c}"] / raw[f"c{c}"],
                }
                for c in CONCURRENCY
            }
        miss64 = rows[f"client, {transport} transport, cache miss"]["c64"]
        goals[transport] = {
            "miss_c64_req_per_s": miss64,
            "meets_500_req_per_s": miss64 >= 500,
            "ratio_vs_bare_transport_c64": miss64 / rows[bare]["c64"],
            "ratio_vs_raw_server_c64": miss64 / raw["c64"],
        }

    from rich.table import Table

    table = Table(title=f"LLM client throughput, requests/s ({os.cpu_count()} cores; server in its own process)")
    table.add_column("what", justify="left")
    for c in CONCURRENCY:
        table.add_column(f"c={c}", justify="right")
    table.add_column("c=64 vs bare transport", justify="right")
    table.add_column("c=64 vs raw server", justify="right")
    for name, rates in rows.items():
        ratio = ratios.get(name, {}).get("c64")
        table.add_row(
            name,
            *(f"{rates[f'c{c}']:.0f}" for c in CONCURRENCY),
            f"{ratio['vs_bare_transport']:.2f}" if ratio else "",
            f"{ratio['vs_raw_server']:.3f}" if ratio else ("1.000" if name.startswith("raw") else ""),
        )
    result = {
        "benchmark": "llm_throughput",
        "quick": args.quick,
        "seconds_per_run": seconds,
        "runs_per_measurement": repeats,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": load_at_start,  # other work on the machine skews the rates
        },
        "rows": rows,
        "ratios": ratios,
        "goal": goals,
    }
    report(table, result, args.out)


if __name__ == "__main__":
    main()
