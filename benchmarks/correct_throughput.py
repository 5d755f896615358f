"""Self-correction pipeline throughput: traces/s of `assay correct run` (the engine, the runner, trace
writing, policy updates and saves, the summary) against the scripted OpenAI-compatible server at
concurrency 1 and 32, beside the server's raw rate measured in the same run.

The server (assay.llm.testserver, echo answers) runs in its own process. Each trace is a real
episode over a shipped GSM8K question: initial answer, then up to 2 reprompts chosen by a Thompson
policy (which may stop), GSM8K checking, rewards, trace JSONL, policy state; no response cache (every
request reaches the server). Rates:

  raw server   a minimal keep-alive socket client sending one pre-encoded request each in turn: what the
               server can deliver (requests/s), the ceiling for any client
  correct run  traces/s, and the requests/s they made (requests per trace vary: the policy may stop)

The ratio is the run's requests/s over the raw server's requests/s at the same concurrency (1.0 would
mean the pipeline costs nothing beyond the server). `traces/s ceiling` = raw rate / requests per trace.

    python benchmarks/correct_throughput.py            # writes benchmarks/results/correct_throughput.json
    python benchmarks/correct_throughput.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import platform
import statistics
import tempfile
import time
from pathlib import Path

from assay.correct.config import CorrectConfig
from assay.correct.engine import arun_correct
from assay.correct.qa import sample_path
from assay.llm import LLMClient, LLMSettings
from assay.pipeline.runner import RunnerSettings
from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)
from llm_throughput import raw_server_rate, start_server

CONCURRENCY = (1, 32)
MODEL = "openai/bench"


def question_file(folder: Path, n: int) -> Path:
    """The first n lines of the shipped GSM8K test file (its own schema: question, answer)."""
    path = folder / f"first_{n}" / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with sample_path("gsm8k").open(encoding="utf-8") as f:
        path.write_text("".join(itertools.islice(f, n)), encoding="utf-8")
    return path


async def correct_rate(base_url: str, data: Path, concurrency: int, folder: Path) -> dict:
    out = Path(tempfile.mkdtemp(dir=folder, prefix=f"c{concurrency}-"))
    config = CorrectConfig(dataset="gsm8k", data=data, policy="thompson", max_turns=2, plots=False)
    llm = LLMSettings(model=MODEL, api_base=base_url, max_concurrency=concurrency)
    runner = RunnerSettings(concurrency=concurrency, progress=False)
    client = LLMClient(llm)
    try:
        started = time.perf_counter()
        summary = await arun_correct(config, out, client, llm, runner)
        seconds = time.perf_counter() - started
    finally:
        await client.aclose()
    requests = summary["usage"]["requests"]
    assert summary["run"]["failed"] == 0 and summary["usage"]["errors"] == 0, summary["run"]
    return {
        "traces": summary["n"],
        "requests": requests,
        "seconds": seconds,
        "traces_per_s": summary["n"] / seconds,
        "requests_per_s": requests / seconds,
    }


async def run_all(base_url: str, folder: Path, seconds: float, repeats: int, n_questions: dict[int, int]) -> dict:
    rows: dict[int, dict] = {}
    for conc in CONCURRENCY:
        data = question_file(folder, n_questions[conc])
        raws, runs = [], []
        for _ in range(repeats):  # the two take turns, so a slow moment of a shared machine hits both
            raws.append(await raw_server_rate(base_url, conc, seconds))
            runs.append(await correct_rate(base_url, data, conc, folder))
            print(
                f"  c={conc:<3} raw {raws[-1]:8.0f} req/s   correct {runs[-1]['traces_per_s']:7.1f} traces/s "
                f"({runs[-1]['requests_per_s']:.0f} req/s, {runs[-1]['traces']} traces)",
                flush=True,
            )
        med = {k: statistics.median(r[k] for r in runs) for k in ("traces_per_s", "requests_per_s", "seconds")}
        raw = statistics.median(raws)
        per_trace = sum(r["requests"] for r in runs) / sum(r["traces"] for r in runs)
        rows[conc] = med | {
            "traces": runs[0]["traces"],
            "requests_per_trace": per_trace,
            "raw_server_requests_per_s": raw,
            "ratio_vs_raw_server": med["requests_per_s"] / raw,
            "traces_per_s_ceiling": raw / per_trace,
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer questions, one repeat (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per concurrency (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "correct_throughput.json")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    n_questions = {1: 40, 32: 200} if args.quick else {1: 200, 32: 1319}
    proc, base_url = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = asyncio.run(run_all(base_url, Path(tmp), 0.3 if args.quick else 1.0, repeats, n_questions))
    finally:
        proc.terminate()
        proc.wait()

    from rich.table import Table

    table = Table(title="assay correct run vs the raw server (scripted OpenAI-compatible, echo answers)")
    for col in (
        "concurrency",
        "traces",
        "traces/s",
        "req/trace",
        "req/s",
        "raw server req/s",
        "ratio",
        "ceiling traces/s",
    ):
        table.add_column(col, justify="right")
    for conc, r in rows.items():
        table.add_row(
            str(conc),
            str(r["traces"]),
            f"{r['traces_per_s']:.1f}",
            f"{r['requests_per_trace']:.2f}",
            f"{r['requests_per_s']:.0f}",
            f"{r['raw_server_requests_per_s']:.0f}",
            f"{r['ratio_vs_raw_server']:.3f}",
            f"{r['traces_per_s_ceiling']:.0f}",
        )
    result = {
        "benchmark": "correct_throughput",
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "quick": args.quick,
        "repeats": repeats,
        "rows": {f"c{c}": r for c, r in rows.items()},
    }
    report(table, result, args.out)


if __name__ == "__main__":
    main()
