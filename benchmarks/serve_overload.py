"""`assay serve` past its capacity: measure what POST /api/score sustains, then offer twice that
for a minute and record what the server does with the excess.

    python benchmarks/serve_overload.py --judge runs/judges       # the judges of `make demo`

1. Capacity: a closed loop of `--concurrency` requests in flight for `--measure` seconds; the
   requests/s it gets is the server's capacity (all answers must be 200).
2. Overload: an open loop at `--factor` x capacity for `--duration` seconds: request i is sent at
   t0 + i / rate whatever happened to the others (at most `--max-in-flight` at once; past that
   a request is counted as dropped by the client, not sent).
Records the status counts (the bounded queue should answer 503 with Retry-After, and nothing else
5xx), p50/p99 latency of the served (200) and the refused (503) requests, the served rate, and
the server's resident memory every second (start, middle and end reported: it should be flat).
Every text is one real passage of the tiny-shakespeare validation split (`--chars` long). The
server runs in its own process on 127.0.0.1 with its default limits and `--threads` torch
threads; the load comes from one aiohttp client process. Writes benchmarks/results/serve_overload.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report  # noqa: E402
from serve_load import passages, percentiles, start_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` (Linux /proc)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def capacity(session, url: str, texts: list[str], concurrency: int, seconds: float) -> float:
    """Requests/s of a closed loop with `concurrency` requests in flight (after a warm-up)."""
    done = 0
    stop_at = 0.0

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < stop_at:
            async with session.post(url + "/api/score", json={"text": texts[i % len(texts)]}) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"capacity run: the server answered {resp.status}: {body[:200]!r}")
            done += 1
            i += concurrency

    stop_at = time.perf_counter() + 2  # warm-up: connections open, model paths hot
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    done = 0
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return done / (time.perf_counter() - started)


async def overload(session, url: str, texts: list[str], rate: float, seconds: float, max_in_flight: int, pid: int):
    statuses: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {"200": [], "503": []}
    no_retry_after = 0
    dropped = 0
    in_flight = 0
    memory: list[tuple[float, float]] = []  # (seconds since the start, RSS MiB)
    tasks: set[asyncio.Task] = set()

    async def one(text: str) -> None:
        nonlocal in_flight, no_retry_after
        t0 = time.perf_counter()
        try:
            async with session.post(url + "/api/score", json={"text": text}) as resp:
                await resp.read()
                key = str(resp.status)
                if resp.status == 503 and "Retry-After" not in resp.headers:
                    no_retry_after += 1
        except Exception as exc:  # a refused or reset connection is a result here, not a crash
            key = type(exc).__name__
        statuses[key] += 1
        if key in latencies:
            latencies[key].append(time.perf_counter() - t0)
        in_flight -= 1

    async def watch(start: float) -> None:
        while True:
            memory.append((round(time.perf_counter() - start, 1), round(rss_mib(pid), 1)))
            await asyncio.sleep(1)

    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    watcher = loop.create_task(watch(start))
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= max_in_flight:
            dropped += 1
            continue
        in_flight += 1
        task = loop.create_task(one(texts[i % len(texts)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_for = time.perf_counter() - start
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    memory.append((round(wall, 1), round(rss_mib(pid), 1)))
    watcher.cancel()
    served = latencies["200"]
    p50, p99 = percentiles(served) if len(served) > 1 else (float("nan"), float("nan"))
    r50, r99 = percentiles(latencies["503"]) if len(latencies["503"]) > 1 else (float("nan"), float("nan"))
    return {
        "offered_per_s": rate,
        "sent": sum(statuses.values()),
        "sent_for_s": sent_for,
        "dropped_by_client": dropped,
        "statuses": dict(sorted(statuses.items())),
        "other_5xx": sum(n for k, n in statuses.items() if k.startswith("5") and k != "503"),
        "errors": sum(n for k, n in statuses.items() if not k.isdigit()),
        "503_without_retry_after": no_retry_after,
        "served_per_s": len(served) / wall,
        "served_p50_ms": p50,
        "served_p99_ms": p99,
        "refused_p50_ms": r50,
        "refused_p99_ms": r99,
        "rss_mib": memory,
    }


async def run(url: str, texts: list[str], args, pid: int) -> dict:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=args.max_in_flight)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        rss_start = rss_mib(pid)
        rate = await capacity(session, url, texts, args.concurrency, args.measure)
        print(f"capacity: {rate:.1f} requests/s; now {args.factor:g}x that for {args.duration:g} s", flush=True)
        before = await stats(url)  # (the counters below cover the overload only)
        loaded = await overload(session, url, texts, args.factor * rate, args.duration, args.max_in_flight, pid)
        after = await stats(url)
    return {"capacity_per_s": rate, "rss_before_capacity_mib": rss_start, "overload": loaded, "stats": [before, after]}


async def stats(url: str) -> dict:
    """The server's counters and limits (a connection of its own: a pooled one may have timed out)."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url + "/api/models") as resp:
        info = await resp.json()
    return info["stats"] | {"limits": info["limits"]}


def at(memory: list[tuple[float, float]], fraction: float) -> float:
    """RSS at `fraction` of the run (the nearest sample)."""
    end = memory[-1][0]
    return min(memory, key=lambda m: abs(m[0] - fraction * end))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judge", type=Path, default=ROOT / "runs" / "judges", help="A judge run or folder of runs.")
    parser.add_argument("--concurrency", type=int, default=32, help="Requests in flight when measuring capacity.")
    parser.add_argument("--measure", type=float, default=10, help="Seconds of the capacity measurement.")
    parser.add_argument("--factor", type=float, default=2.0, help="Offered load, in multiples of the capacity.")
    parser.add_argument("--duration", type=float, default=60, help="Seconds of overload.")
    parser.add_argument("--max-in-flight", type=int, default=512, help="Client bound on requests in flight.")
    parser.add_argument("--chars", type=int, default=200, help="Characters per text.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the server.")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="A server option, e.g. limits.max_queued_texts=64."
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_overload.json")
    args = parser.parse_args()
    if not args.judge.exists():
        raise SystemExit(f"no judge at {args.judge}: run `make demo` first, or pass --judge DIR")

    from rich.table import Table

    texts = passages(2000, args.chars)
    load_before = os.getloadavg()[0]  # the machine may be shared: its load is part of the result
    proc, url = start_server(args.judge, args.threads, args.sets)
    try:
        result = asyncio.run(run(url, texts, args, proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    judge = args.judge.resolve()
    shown_judge = str(judge.relative_to(ROOT) if judge.is_relative_to(ROOT) else judge)
    o = result["overload"]
    memory = o["rss_mib"]
    rss = {"start": at(memory, 0), "middle": at(memory, 0.5), "end": at(memory, 1)}
    before, after = result["stats"]
    table = Table(
        title=f"POST /api/score at {args.factor:g}x capacity for {args.duration:g} s ({args.chars} characters)"
    )
    for col in ("capacity req/s", "offered req/s", "served req/s", "statuses", "served p50 / p99 ms"):
        table.add_column(col, justify="right")
    table.add_column("503 p50 / p99 ms", justify="right")
    table.add_column("RSS MiB start / middle / end", justify="right")
    table.add_row(
        f"{result['capacity_per_s']:,.1f}",
        f"{o['offered_per_s']:,.1f}",
        f"{o['served_per_s']:,.1f}",
        " ".join(f"{k}: {v:,}" for k, v in o["statuses"].items()),
        f"{o['served_p50_ms']:,.0f} / {o['served_p99_ms']:,.0f}",
        f"{o['refused_p50_ms']:,.1f} / {o['refused_p99_ms']:,.1f}",
        " / ".join(f"{v:,.0f}" for v in rss.values()),
    )
    report(
        table,
        {
            "judge": shown_judge,
            "cpus": os.cpu_count(),
            "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
            "chars": args.chars,
            "threads": args.threads,
            "server_options": args.sets,
            "limits": after["limits"],
            "capacity": {
                "concurrency": args.concurrency,
                "seconds": args.measure,
                "requests_per_s": result["capacity_per_s"],
            },
            "overload": {"factor": args.factor, "seconds": args.duration, "max_in_flight": args.max_in_flight}
            | {k: v for k, v in o.items() if k != "rss_mib"},
            "rss_mib": rss | {"before_capacity": result["rss_before_capacity_mib"], "every_second": memory},
            "server_stats": {
                k: after[k] - before[k] for k in ("score_requests", "score_batches", "scored_texts", "score_refused")
            }
            | {
                "mean_batch_texts": (after["scored_texts"] - before["scored_texts"])
                / max(after["score_batches"] - before["score_batches"], 1)
            },
        },
        args.out,
    )
    if o["other_5xx"] or o["errors"] or o["503_without_retry_after"]:
        raise SystemExit("the server answered something other than 200 and 503 with Retry-After (see the statuses)")


if __name__ == "__main__":
    main()
