"""`--engine ray` against `--engine local` on this machine, in the same run (docs/scale.md):

  LLM-bound step    `synth configs` (1 candidate per row) against the scripted OpenAI-compatible
                    server answering every request after 100 ms; `runner.concurrency` rows in
                    flight per engine process (local: one process; Ray: each actor)
  scorer-bound step `synth score --scorers audio` (the offline renderer, CPU-bound) over rows with
                    one valid music config each
  start-up          `ray.init()` of a local instance; a 1-row run of each engine (for Ray: the actor
                    pool's start, each actor importing assay and building its client or scorers)
  after start       (rows - 1) / (time - the 1-row run): the rate once the engine has started
  per-row overhead  (time - the 1-row run) / (rows - 1) of Ray, minus the same of the local runner:
                    what each row costs Ray beyond the local runner (negative: Ray is faster per row)
  in flight         LLM-bound rows in flight at once (8 per process); a local run at 16 shows what
                    two actors gain from concurrency alone
  install size      what `pip install 'assay[ray]'` adds to an environment with assay[dev,bench]:
                    the files of the packages in ray[data]'s dependency closure that nothing else
                    of assay needs (read from the installed packages' RECORD files)

Ratios are rows/s over the local engine's rows/s, measured in this run. Everything runs on this
machine: Ray here pays its overhead without the cluster that would repay it (docs/scale.md works
out what a cluster gives).

    python benchmarks/scale.py            # writes benchmarks/results/scale.json
    python benchmarks/scale.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time
from importlib import metadata
from pathlib import Path

from assay.cluster import ray_session
from assay.llm import LLMSettings
from assay.llm.testserver import Reply, ScriptedServer
from assay.pipeline.runner import RunnerSettings
from assay.synth.music_configs import MusicConfigsConfig, generate_configs
from assay.synth.score import ScoreConfig, score_configs
from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)

LATENCY_S = 0.1
PAYLOAD = Path(__file__).resolve().parents[1] / "tests" / "music" / "data" / "payload_valid.json"


def vibe_rows(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"row_id": f"r{i:05d}", "vibe_original": f"a slow grey harbour, number {i}"} for i in range(n)]
    (folder / "TEST.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def config_rows(folder: Path, n: int) -> Path:
    """Rows as `synth configs` writes them, each with one valid candidate (a varied tempo)."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = json.loads(PAYLOAD.read_text())
    tempos = ["very_slow", "slow", "medium", "fast", "very_fast"]
    rows = []
    for i in range(n):
        p = json.loads(json.dumps(payload))
        p["config"]["tempo"] = tempos[i % 5]
        rows.append(
            {
                "row_id": f"r{i:05d}",
                "vibe_original": "a slow grey harbour",
                "config_candidates": [p],
                "scores": {"format_valid": [1], "schema_valid": [1], "palette_valid": [1]},
            }
        )
    (folder / "TEST.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def runner(engine: str, actors: int = 1, concurrency: int = 8) -> RunnerSettings:
    return RunnerSettings(engine=engine, ray_actors=actors, concurrency=concurrency, progress=False, overwrite=True)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def llm_step(base_url: str, inp: Path, out: Path, settings: RunnerSettings) -> float:
    llm = LLMSettings(model="openai/bench", api_base=base_url, max_concurrency=settings.concurrency)
    config = MusicConfigsConfig(num_candidates=1, splits=["TEST"])
    return timed(lambda: generate_configs(inp, out, config, llm, settings))


def scorer_step(inp: Path, out: Path, settings: RunnerSettings) -> float:
    config = ScoreConfig(scorers=["audio"], splits=["TEST"])
    return timed(lambda: score_configs(inp, out, config, None, settings))


def install_size() -> dict:
    """Bytes of the packages only ray[data] brings (its dependency closure minus assay[dev,bench]'s)."""

    def closure(roots: list[tuple[str, set[str]]]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            name, extras = todo.pop()
            key = re.sub(r"[-_.]+", "-", name).lower()
            if key in seen:
                continue
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            seen.add(key)
            for req in dist.requires or []:
                m = re.match(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?", req)
                marker = req.split(";", 1)[1] if ";" in req else ""
                wanted = re.findall(r'extra\s*==\s*"([^"]+)"', marker)
                if wanted and not set(wanted) & extras:
                    continue
                if marker and not wanted and "python_version" not in marker and "sys_platform" not in marker:
                    continue
                sub = set(m.group(2)[1:-1].split(",")) if m.group(2) else set()
                todo.append((m.group(1), sub))
        return seen

    base = closure([("assay", {"dev", "bench"})]) - {"ray"}
    with_ray = closure([("assay", {"dev", "bench"}), ("ray", {"data"})])
    only_ray = sorted(with_ray - base)
    sizes = {}
    for key in only_ray:
        dist = metadata.distribution(key)
        sizes[dist.metadata["Name"]] = sum((f.size or 0) for f in dist.files or [])
    return {"packages": sizes, "total_mib": round(sum(sizes.values()) / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="A smoke run (fewer rows).")
    args = parser.parse_args()
    n_llm, n_audio = (40, 8) if args.quick else (400, 48)

    tmp = Path(tempfile.mkdtemp(prefix="assay-scale-"))
    rows: list[dict] = []
    with ScriptedServer(responder=lambda body: Reply(delay_s=LATENCY_S)) as server:
        vibes, configs = vibe_rows(tmp / "vibes", n_llm), config_rows(tmp / "configs", n_audio)
        tiny_vibes, tiny_configs = vibe_rows(tmp / "vibes1", 1), config_rows(tmp / "configs1", 1)
        scorer_step(tiny_configs, tmp / "o-warm", runner("local"))  # imports and models, once
        local = {
            "llm": llm_step(server.base_url, vibes, tmp / "o-llm-local", runner("local")),
            "llm_1row": llm_step(server.base_url, tiny_vibes, tmp / "o-llm1-local", runner("local")),
            "scorer": scorer_step(configs, tmp / "o-sc-local", runner("local")),
            "scorer_1row": scorer_step(tiny_configs, tmp / "o-sc1-local", runner("local")),
            # as many rows in flight as 2 actors have: what Ray adds beyond concurrency
            "llm16": llm_step(server.base_url, vibes, tmp / "o-llm-local16", runner("local", concurrency=16)),
        }
        started = time.perf_counter()
        with ray_session():
            ray_init = time.perf_counter() - started
            measured = {}
            for actors in (1, 2):
                settings = runner("ray", actors)
                measured[actors] = {
                    "llm": llm_step(server.base_url, vibes, tmp / f"o-llm-{actors}", settings),
                    "llm_1row": llm_step(server.base_url, tiny_vibes, tmp / f"o-llm1-{actors}", settings),
                    "scorer": scorer_step(configs, tmp / f"o-sc-{actors}", settings),
                    "scorer_1row": scorer_step(tiny_configs, tmp / f"o-sc1-{actors}", settings),
                }
    for step, n in (("llm", n_llm), ("scorer", n_audio)):
        base_rate = n / local[step]
        local_per_row = (local[step] - local[f"{step}_1row"]) / max(n - 1, 1)
        rows.append({"step": step, "engine": "local", "actors": 1, "in_flight": 8, "rows": n,
                     "seconds": local[step], "rows_per_s": base_rate, "ratio": 1.0,
                     "startup_s": local[f"{step}_1row"], "steady_rows_per_s": 1 / local_per_row,
                     "overhead_ms_per_row": 0.0})  # fmt: skip
        if step == "llm":
            rate = n / local["llm16"]
            rows.append({"step": step, "engine": "local", "actors": 1, "in_flight": 16, "rows": n,
                         "seconds": local["llm16"], "rows_per_s": rate, "ratio": rate / base_rate,
                         "startup_s": None, "steady_rows_per_s": None, "overhead_ms_per_row": None})  # fmt: skip
        for actors, m in measured.items():
            rate = n / m[step]
            per_row = (m[step] - m[f"{step}_1row"]) / max(n - 1, 1)
            rows.append({"step": step, "engine": "ray", "actors": actors, "in_flight": 8 * actors, "rows": n,
                         "seconds": m[step], "rows_per_s": rate, "ratio": rate / base_rate,
                         "startup_s": m[f"{step}_1row"], "steady_rows_per_s": 1 / per_row,
                         "overhead_ms_per_row": 1000 * (per_row - local_per_row)})  # fmt: skip
    size = install_size()

    from rich.table import Table

    table = Table(title=f"--engine ray vs local on {os.cpu_count()} cores (Ray init {ray_init:.1f} s)")
    columns = ("step", "engine", "actors", "in flight", "rows", "s", "rows/s", "vs local", "1-row run s",
               "rows/s after start", "ms/row extra")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    for r in rows:
        table.add_row(r["step"], r["engine"], str(r["actors"]), str(r["in_flight"]), str(r["rows"]),
                      f"{r['seconds']:.1f}", f"{r['rows_per_s']:.1f}", f"{r['ratio']:.2f}x",
                      fmt(r["startup_s"], ".1f"), fmt(r["steady_rows_per_s"], ".1f"),
                      fmt(r["overhead_ms_per_row"], "+.1f"))  # fmt: skip
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "llm_latency_s": LATENCY_S,
        "concurrency_per_process": 8,
        "ray_init_s": ray_init,
        "rows": rows,
        "install": size,
    }
    report(table, result, RESULTS / ("scale_quick.json" if args.quick else "scale.json"))
    print(f"assay[ray] adds {size['total_mib']} MiB: " + ", ".join(
        f"{k} {v / 2**20:.0f}" for k, v in sorted(size["packages"].items(), key=lambda kv: -kv[1])[:8]))  # fmt: skip


if __name__ == "__main__":
    main()
