"""Ablation of the masked-diffusion training recipe: ELBO bits/char of the shipped shakespeare_char config
under each recipe change, at equal wall time, two seeds per row.

Each row adds one change to the best row above it (MDLM, Sahoo et al. 2024; MD4, Shi et al. 2024):

    base         the recipe before issue 17: t ~ U(0, 1) drawn independently, plain mean loss
    +stratified  low-discrepancy t within a batch (masking stage `stratified = true`)
    +subs        SUBS parameterisation: no probability on [MASK] and the other specials (`model.subs`)
    +ema         EMA of the weights for evaluation and checkpoints (`train.ema_decay`)
    +elbo        the continuous-time 1/t ELBO weighting of the loss (`masking.loss = "elbo"`)
    warmup 30    a shorter learning-rate warmup (30 steps instead of 100)
    batch 16     half the batch, twice the steps
    3x192        a wider, shallower model (3 layers of 192 instead of 4 of 128)

Rows that change only the recipe cost the same per step (measured: the `seconds` column), so equal
steps are equal wall time; a row that changes the shape or batch sets its steps from the measured
step time of the base shape (`--calibrate`). Runs go two at a time, one torch thread each.

    python benchmarks/diffusion_recipe.py                 # all rows, 2 seeds, the demo budget
    python benchmarks/diffusion_recipe.py --rows base,+subs --iters 50 --seeds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from assay.configs import resolve
from common import RESULTS, choose, report  # benchmarks/common.py (the script's folder is on sys.path)

CONFIG = resolve("shakespeare_char")
STRATIFIED = 'masking.stages=[{kind="random", rate=[0.0, 1.0], stratified=true}]'
IID = 'masking.stages=[{kind="random", rate=[0.0, 1.0], stratified=false}]'

# name -> (overrides on top of shakespeare_char, relative cost of one step vs base)
ROWS: dict[str, tuple[list[str], float | None]] = {
    "base": ([IID, "model.subs=false", "masking.loss=mean", "train.ema_decay=none"], 1.0),
    "+stratified": ([STRATIFIED, "model.subs=false", "masking.loss=mean", "train.ema_decay=none"], 1.0),
    "+subs": ([STRATIFIED, "model.subs=true", "masking.loss=mean", "train.ema_decay=none"], 1.0),
    # SUBS lost (2 seeds): the rows below build on +stratified without it
    "+ema": ([STRATIFIED, "model.subs=false", "masking.loss=mean", "train.ema_decay=0.999"], 1.0),
    "+elbo": ([STRATIFIED, "model.subs=false", "masking.loss=elbo", "train.ema_decay=0.999"], 1.0),
}
RECIPE = ROWS["+ema"][0]
ROWS |= {
    "warmup 30": ([*RECIPE, "train.warmup_iters=30"], 1.0),
    # half the tokens per step: twice the steps in the same time
    "batch 16": ([*RECIPE, "train.warmup_iters=30", "train.batch_size=16"], 0.5),
    "3x192": ([*RECIPE, "train.warmup_iters=30", "model.n_layer=3", "model.n_embd=192"], None),  # cost: calibrated
}


def run_one(name: str, overrides: list[str], iters: int, seed: int, out: Path) -> dict:
    done = out / "bench.json"  # a finished run of the same row, steps and seed is reused
    if done.exists():
        previous = json.loads(done.read_text())
        if previous["overrides"] == overrides and previous["iters"] == iters:
            return previous["result"]
    cmd = [
        sys.executable, "-m", "assay", "train", "--overwrite", "-c", str(CONFIG),
        "--set", f"run.out_dir={out}", "--set", f"run.seed={seed}", "--set", "run.threads=1",
        "--set", f"train.max_iters={iters}", "--set", "train.plot=false",
    ]  # fmt: skip
    for o in overrides:
        cmd += ["--set", o]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{name} seed {seed} failed:\n{proc.stderr[-2000:]}")
    final = json.loads((out / "eval.json").read_text())
    result = {"row": name, "seed": seed, "iters": iters, "seconds": seconds, "bits_per_char": final["bits_per_char"]}
    done.write_text(json.dumps({"overrides": overrides, "iters": iters, "result": result}))
    return result


def step_seconds(out: Path) -> float:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r][1:]  # the first window warms up
    cfg = json.loads((out / "config.json").read_text())
    return cfg["train"]["batch_size"] * cfg["data"]["block_size"] / (sum(rates) / len(rates))


def calibrate(overrides: list[str], runs: Path) -> float:
    """Step time of a row relative to the base shape, both measured side by side (one thread each)."""
    quick = ["train.eval_interval=100000", "train.elbo_points=1", "train.eval_blocks=1", "train.log_interval=5"]
    jobs = [("calibrate", [*ROWS["base"][0], *quick], 40, 1337, runs / "calibrate-base"),
            ("calibrate", [*overrides, *quick], 40, 1337, runs / "calibrate-row")]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: run_one(*job), jobs))
    return step_seconds(runs / "calibrate-row") / step_seconds(runs / "calibrate-base")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    ap.add_argument("--iters", type=int, default=300, help="steps of the base shape (the demo budget)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", type=Path, default=Path("runs/bench/diffusion_recipe"))
    ap.add_argument("--out", type=Path, default=RESULTS / "diffusion_recipe.json")
    args = ap.parse_args()
    names = choose(args.rows, ROWS, "rows")
    jobs = []
    for name in names:
        overrides, cost = ROWS[name]
        if cost is None:
            cost = calibrate(overrides, args.runs / name.replace(" ", "_"))
            print(f"{name}: one step costs {cost:.2f} base steps", flush=True)
        for seed in range(1337, 1337 + args.seeds):
            iters = max(1, round(args.iters / cost))
            jobs.append((name, overrides, iters, seed, args.runs / f"{name.strip('+').replace(' ', '_')}-{seed}"))
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda job: run_one(*job), jobs))
        for r in runs:
            print(json.dumps(r), flush=True)

    from rich.table import Table

    table = Table(
        title=f"masked-diffusion recipe: ELBO bits/char at {args.iters} base steps, {args.seeds} seeds",
        caption="seconds/run: wall time of a run with one thread, which depends on what else the machine ran; "
        "rows of the same shape and batch cost the same per step",
    )
    for col in ("row", "steps", "seconds/run", "bits/char (seeds)", "mean", "vs base"):
        table.add_column(col)
    rows = []
    for name in names:
        mine = [r for r in runs if r["row"] == name]
        bpc = [r["bits_per_char"] for r in mine]
        row = {
            "row": name,
            "overrides": ROWS[name][0],
            "iters": mine[0]["iters"],
            "seconds": statistics.mean(r["seconds"] for r in mine),
            "bits_per_char": bpc,
            "mean": statistics.mean(bpc),
        }
        rows.append(row)
        seeds = " ".join(f"{b:.4f}" for b in bpc)
        delta = row["mean"] - rows[0]["mean"]
        table.add_row(name, str(row["iters"]), f"{row['seconds']:.0f}", seeds, f"{row['mean']:.4f}", f"{delta:+.4f}")
    report(table, {"benchmark": "diffusion_recipe", "base_iters": args.iters, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
