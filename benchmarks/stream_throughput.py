"""Streaming throughput: synthetic shards produced per second (1 and 2 workers) against the
rate at which the judge trainer consumes them, measured in the same run, and the fraction of
training time spent waiting for data when producer and trainer run together.

The filling LM has the demo LM's architecture (`-c shakespeare_char`); its weights are
irrelevant to speed, so one training step makes it. Shards and judge are the demo's
(`-c judge_shakespeare`: 64 passages of 128 tokens per shard, batch 32).

    python benchmarks/stream_throughput.py            # writes benchmarks/results/stream_throughput.json
    python benchmarks/stream_throughput.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from assay import configs
from assay.config import load_config
from assay.data.produce import produce_stream
from assay.data.stream import SHARD_RE, list_shards
from assay.judges.features import JudgeConfig
from assay.judges.synthetic import SyntheticProvider
from assay.judges.tasks import TASKS as JUDGE_TASKS
from assay.train.config import TrainingConfig
from assay.train.metrics import read_metrics
from assay.train.trainer import train
from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def make_lm(work: Path) -> Path:
    out = work / "lm"
    cfg = load_config(
        TrainingConfig,
        configs.resolve("shakespeare_char"),
        [f"run.out_dir={out}", "train.max_iters=1", "train.eval_blocks=1", "train.elbo_points=1", "train.plot=false"],
    )
    train(cfg)
    return out


JUDGE = configs.resolve("judge_shakespeare")


def judge_overrides(work: Path, lm: Path, stream: Path, name: str, extra=()) -> list[str]:
    return [
        f"run.out_dir={work / name}",
        f"data.stream={stream}",
        f"stream.lm={lm}",
        f"model.init_from={lm}",
        "train.plot=false",
        "train.baseline=false",
        "features.lm_features=false",  # the stream is measured, not the feature judge's extra LM passes
        *extra,
    ]


def judge_config(*args, **kwargs) -> TrainingConfig:
    return load_config(JudgeConfig, JUDGE, judge_overrides(*args, **kwargs))


def steady_rate(folder: Path) -> float:
    """Shards per second between the first and the last shard (names carry their write time)."""
    stamps = sorted(int(SHARD_RE.match(p.name)["ts"]) for p in list_shards(folder).values())
    return (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000) if len(stamps) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "stream_throughput.json")
    args = parser.parse_args()
    n_shards, iters = (4, 8) if args.quick else (24, 120)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lm = make_lm(work)
        rows = {}
        for workers in (1, 2):
            stream = work / f"stream{workers}"
            cfg = judge_config(work, lm, stream, "unused", ["stream.max_backlog=none"])
            started = time.perf_counter()
            produce_stream(cfg, stream, workers=workers, shards=n_shards, show=False, provider_class=SyntheticProvider)
            total = time.perf_counter() - started
            rows[f"produce_{workers}w"] = {
                "shards": n_shards,
                "seconds_total": total,
                "shards_per_s_steady": steady_rate(stream / "train"),
            }

        # consumption: the judge trainer reading a finished stream
        cfg = judge_config(
            work, lm, work / "stream2", "consume", [f"train.max_iters={iters}", f"train.eval_interval={iters}"]
        )
        result = train(cfg, tasks=JUDGE_TASKS)
        logs = [r for r in read_metrics(work / "consume/metrics.jsonl") if "tokens_per_s" in r]
        samples_per_s = sum(r["tokens_per_s"] for r in logs) / len(logs) / cfg.data.block_size
        rows["consume"] = {
            "iters": iters,
            "seconds": result.seconds,
            "shards_per_s": samples_per_s / cfg.stream.shard_size,
            "data_frac": sum(r["data_frac"] for r in logs) / len(logs),
        }

        # live: one producer process (backlog 8) and the trainer on the same 2 cores
        live = work / "live"
        overrides = judge_overrides(
            work, lm, live, "live", [f"train.max_iters={iters}", f"train.eval_interval={iters}", "stream.max_backlog=8"]
        )
        cfg = load_config(JudgeConfig, JUDGE, overrides)
        sets = [arg for o in overrides for arg in ("--set", o)]
        producer = subprocess.Popen(  # an endless stream, as `assay data produce` makes it
            [sys.executable, "-m", "assay", "data", "produce", "-c", str(JUDGE), "--out", str(live), *sets],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:  # the trainer waits for the producer to write meta.json and the validation shards
            result = train(cfg, tasks=JUDGE_TASKS)
        finally:
            producer.terminate()
            producer.wait()
        logs = [r for r in read_metrics(work / "live/metrics.jsonl") if "tokens_per_s" in r]
        rows["live_1_producer"] = {
            "iters": iters,
            "seconds": result.seconds,
            "shards_per_s": sum(r["tokens_per_s"] for r in logs)
            / len(logs)
            / cfg.data.block_size
            / cfg.stream.shard_size,
            "data_frac": sum(r["data_frac"] for r in logs) / len(logs),
        }

    consume = rows["consume"]["shards_per_s"]
    from rich.table import Table

    table = Table(title=f"stream throughput ({os.cpu_count()} cores; shards of 64 x 128 tokens; judge batch 32)")
    for col in ("what", "shards/s", "vs trainer consumption", "training time waiting for data"):
        table.add_column(col, justify="right" if col != "what" else "left")
    for name, label in (("produce_1w", "produce, 1 worker"), ("produce_2w", "produce, 2 workers")):
        rate = rows[name]["shards_per_s_steady"]
        rows[name]["ratio_to_consumption"] = rate / consume
        table.add_row(label, f"{rate:.2f}", f"{rate / consume:.2f}x", "")
    table.add_row(
        "trainer consuming a finished stream", f"{consume:.2f}", "1.00x", f"{rows['consume']['data_frac']:.1%}"
    )
    live_row = rows["live_1_producer"]
    table.add_row(
        "trainer with 1 live producer",
        f"{live_row['shards_per_s']:.2f}",
        f"{live_row['shards_per_s'] / consume:.2f}x",
        f"{live_row['data_frac']:.1%}",
    )
    result = {
        "benchmark": "stream_throughput",
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "rows": rows,
    }
    report(table, result, args.out)


if __name__ == "__main__":
    main()
