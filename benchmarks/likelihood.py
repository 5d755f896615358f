"""Masked diffusion vs its autoregressive twin at equal wall time: the ELBO / AR bits-per-char ratio.

For each budget, the diffusion LM (`-c shakespeare_char`) and its causal twin
(`-c shakespeare_char_ar`: same data, size and optimiser) train for the same wall time, side
by side with one torch thread each, so both get one core and the same machine noise. The number of
steps that fits the budget comes from a calibration run of each (also side by side); each run then
follows its full warmup + cosine schedule. Each model is scored by its *best* validation checkpoint
(`best/`, chosen by validation loss) on the same 256 validation blocks: the diffusion model by its
ELBO (16-point t grid), the twin by its exact NLL, both in bits per character.

Budgets (wall seconds per model, one core each):
    demo   about the LM budget of `make demo` (400 steps of the diffusion config on 2 threads,
           ~250 s there: ~500 CPU-seconds)
    long   >= 20 CPU-minutes each. Masked diffusion is reported to hold up better than AR when data
           are repeated many times (Prabhudesai et al., 2025, "Diffusion Beats Autoregressive in
           Data-Constrained Settings", arXiv:2507.15857; Ni et al., 2025, "Diffusion Language Models
           are Super Data Learners"); the table says whether the AR twin started to overfit
           (its last validation loss above its best).

    python benchmarks/likelihood.py                      # both budgets (about 35 minutes)
    python benchmarks/likelihood.py --budgets demo       # the demo budget only
    python benchmarks/likelihood.py --quick              # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from assay.configs import resolve
from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)

MODELS = {"diffusion": "shakespeare_char", "autoregressive": "shakespeare_char_ar"}  # shipped configs
BUDGETS = {"demo": 500.0, "long": 1200.0}


def train(config: str, out: Path, overrides: list[str]) -> float:
    """Run `assay train` in a subprocess with one thread; returns its wall seconds."""
    cmd = [sys.executable, "-m", "assay", "train", "--overwrite", "-c", str(resolve(config))]
    cmd += ["--set", f"run.out_dir={out}"]
    for o in ["run.threads=1", "train.plot=false", *overrides]:
        cmd += ["--set", o]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    if proc.returncode:
        raise SystemExit(f"{config} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def seconds_per_iter(out: Path) -> float:
    """Mean step time from metrics.jsonl's throughput records (the first window, warm-up, skipped)."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r][1:]
    cfg = json.loads((out / "config.json").read_text())
    tokens = cfg["train"]["batch_size"] * cfg["train"]["grad_accum"] * (cfg["data"]["block_size"] + 1)
    return tokens / (sum(rates) / len(rates))


def both(fn, jobs):
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(lambda job: fn(*job), jobs))


def best_bits_per_char(run: Path, blocks: int) -> dict:
    from assay.train.checkpoint import load_checkpoint
    from assay.train.evaluate import evaluate_checkpoint

    ckpt = load_checkpoint(run, "best")
    out = evaluate_checkpoint(ckpt, blocks=blocks, elbo_points=16)
    return {"best_iter": ckpt.state["iter"], "bits_per_char": out["bits_per_char"]}


def curve(run: Path) -> dict:
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if "val_loss" in r]
    best = min(evals, key=lambda r: r["val_loss"])
    return {
        "val_loss": [(r["iter"], r["val_loss"]) for r in evals],
        "overfit": evals[-1]["val_loss"] > best["val_loss"] + 0.01,  # nats: above seed noise
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="demo,long", help="comma-separated: demo, long")
    ap.add_argument("--seconds", type=float, nargs="*", help="override the budgets' wall seconds, in order")
    ap.add_argument("--runs", type=Path, default=Path("runs/bench/likelihood"))
    ap.add_argument("--blocks", type=int, default=256, help="validation blocks of the final scoring")
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny budgets and model")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="override for both models")
    ap.add_argument("--out", type=Path, default=RESULTS / "likelihood.json")
    args = ap.parse_args()
    names = args.budgets.split(",")
    seconds = dict(zip(names, args.seconds, strict=True)) if args.seconds else {n: BUDGETS[n] for n in names}
    extra = list(args.extra)
    calib_iters = 30
    if args.quick:
        extra += ["model.n_layer=1", "model.n_embd=32", "data.block_size=64", "train.batch_size=8"]
        extra += ["train.eval_blocks=8", "train.elbo_points=2", "train.warmup_iters=2"]
        calib_iters, args.blocks = 6, 8
        seconds = {n: 4.0 for n in names}

    # calibration: both models side by side, as in the real runs
    calib = {m: args.runs / f"calibrate-{m}" for m in MODELS}
    settings = [f"train.max_iters={calib_iters}", "train.log_interval=5", "train.eval_interval=100000"]
    both(train, [(MODELS[m], calib[m], [*extra, *settings, "train.warmup_iters=2"]) for m in MODELS])
    step = {m: seconds_per_iter(calib[m]) for m in MODELS}
    print("seconds per step (1 thread, side by side):", {m: round(s, 3) for m, s in step.items()}, flush=True)

    from rich.table import Table

    table = Table(title="masked diffusion vs AR twin at equal wall time (1 core each, best checkpoint)")
    for col in ("budget", "model", "steps", "wall s", "best iter", "bits/char", "ratio ELBO/AR", "AR overfit"):
        table.add_column(col)
    rows = []
    for name in names:
        iters = {m: max(10, int(seconds[name] / step[m])) for m in MODELS}
        runs = {m: args.runs / name / m for m in MODELS}
        jobs = []
        for m in MODELS:
            evals = 8 if name == "long" else 3
            settings = [f"train.max_iters={iters[m]}", f"train.eval_interval={max(1, iters[m] // evals)}"]
            jobs.append((MODELS[m], runs[m], [*extra, *settings]))
        walls = dict(zip(MODELS, both(train, jobs), strict=True))
        scores = {m: best_bits_per_char(runs[m], args.blocks) for m in MODELS}
        curves = {m: curve(runs[m]) for m in MODELS}
        ratio = scores["diffusion"]["bits_per_char"] / scores["autoregressive"]["bits_per_char"]
        row = {
            "budget": name,
            "seconds": seconds[name],
            "ratio": ratio,
            "models": {m: {"iters": iters[m], "wall_seconds": walls[m], **scores[m], **curves[m]} for m in MODELS},
        }
        rows.append(row)
        for m in MODELS:
            r = row["models"][m]
            table.add_row(
                name if m == "diffusion" else "",
                m,
                str(r["iters"]),
                f"{r['wall_seconds']:.0f}",
                str(r["best_iter"]),
                f"{r['bits_per_char']:.4f}",
                f"{ratio:.3f}" if m == "diffusion" else "",
                ("yes" if r["overfit"] else "no") if m == "autoregressive" else "",
            )
        print(json.dumps(row), flush=True)
    report(table, {"benchmark": "likelihood", "seconds_per_step": step, "extra": extra, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
