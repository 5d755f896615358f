"""`assay serve` under load: requests/s and p50/p99 latency of POST /api/score at concurrency
1/8/32, against the same judge called in-process in the same run.

    python benchmarks/serve_load.py --judge runs/judges            # the judges of `make demo`

Every request scores one real passage of the tiny-shakespeare validation split (`--chars` long,
a different one each time). Baselines, same judge, same torch threads, same texts:
- in-process, one text per call: what a script calling `Judge.score` in a loop gets;
- in-process, `c` texts per call: the batching ceiling at concurrency c.
The server runs in its own process on 127.0.0.1 (a free port); the load comes from one aiohttp
client process with `c` requests in flight, `--requests` per level (bounded). Writes
benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def passages(n: int, chars: int) -> list[str]:
    from assay.data.corpus import load_corpus, split_corpus

    val = "".join(d.text for d in split_corpus(load_corpus("tinyshakespeare"), 0.1, "contiguous")[1])
    step = max(1, (len(val) - chars) // n)
    return [val[i * step : i * step + chars] for i in range(n)]


def percentiles(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000  # ms


def in_process(judge, texts: list[str], per_call: int) -> dict:
    latencies = []
    judge.score(texts[:per_call])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), per_call):
        t0 = time.perf_counter()
        judge.score(texts[i : i + per_call])
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    p50, p99 = percentiles(latencies)
    return {"texts_per_s": len(texts) / wall, "p50_ms": p50, "p99_ms": p99}


def start_server(judge: Path, threads: int, sets: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "assay", "serve", "--judge", str(judge), "--port", "0"]
    cmd += ["--set", f"server.threads={threads}"]
    for assignment in sets:
        cmd += ["--set", assignment]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].split()[0].rstrip("/")


async def load(url: str, texts: list[str], concurrency: int) -> dict:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    queue = iter(texts)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(text: str) -> None:
            t0 = time.perf_counter()
            async with session.post(url + "/api/score", json={"text": text}) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"the server answered {resp.status}: {body[:200]!r}")
            latencies.append(time.perf_counter() - t0)

        async def worker() -> None:
            for text in queue:
                await post(text)

        for text in texts[:concurrency]:  # warm-up: connections open, model paths hot
            await post(text)
        latencies.clear()
        async with session.get(url + "/api/models") as resp:
            before = (await resp.json())["stats"]
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        async with session.get(url + "/api/models") as resp:
            after = (await resp.json())["stats"]
    p50, p99 = percentiles(latencies)
    calls = after["score_batches"] - before["score_batches"]
    texts_per_call = (after["scored_texts"] - before["scored_texts"]) / max(calls, 1)
    return {"requests_per_s": len(texts) / wall, "p50_ms": p50, "p99_ms": p99, "texts_per_model_call": texts_per_call}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judge", type=Path, default=ROOT / "runs" / "judges", help="A judge run or folder of runs.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=400, help="Requests per concurrency level.")
    parser.add_argument("--chars", type=int, default=200, help="Characters per text.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, in-process and in the server.")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="A server option, e.g. limits.batch_wait_ms=0."
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load.json")
    args = parser.parse_args()
    if not args.judge.exists():
        raise SystemExit(f"no judge at {args.judge}: run `make demo` first, or pass --judge DIR")

    import torch
    from rich.table import Table

    from assay import Judge

    torch.set_num_threads(args.threads)
    judge = Judge.load(args.judge)
    texts = passages(args.requests, args.chars)
    single = in_process(judge, texts, 1)
    proc, url = start_server(args.judge, args.threads, args.sets)
    rows = []
    try:
        for c in args.concurrency:
            served = asyncio.run(load(url, texts, c))
            batched = in_process(judge, texts, c) if c > 1 else single
            rows.append({"concurrency": c, "server": served, "in_process_batched": batched})
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    table = Table(title=f"POST /api/score, {args.requests} requests of {args.chars} characters per level")
    for col in (
        "concurrency",
        "server req/s",
        "p50 ms",
        "p99 ms",
        "texts per model call",
        "in-process 1/call texts/s",
        "server / in-process",
        "in-process c/call texts/s",
    ):
        table.add_column(col, justify="right")
    for row in rows:
        s, b = row["server"], row["in_process_batched"]
        table.add_row(
            str(row["concurrency"]),
            f"{s['requests_per_s']:,.1f}",
            f"{s['p50_ms']:.1f}",
            f"{s['p99_ms']:.1f}",
            f"{s['texts_per_model_call']:.1f}",
            f"{single['texts_per_s']:,.1f}",
            f"{s['requests_per_s'] / single['texts_per_s']:.2f}",
            f"{b['texts_per_s']:,.1f}",
        )
    result = {
        "judge": str(args.judge),
        "requests": args.requests,
        "chars": args.chars,
        "threads": args.threads,
        "server_options": args.sets,
        "in_process_single": single,
        "levels": rows,
    }
    report(table, result, args.out)


if __name__ == "__main__":
    main()
