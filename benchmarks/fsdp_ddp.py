"""FSDP vs DDP: `train.parallel = fsdp` against its baseline `ddp`, the same config in the same run.

Two processes under torchrun on the CPU (gloo), one thread each, train the same masked-diffusion
LM (dropout 0, so both see identical batches and masks) with the real trainer; the runs alternate
(ddp, fsdp, ddp, fsdp, ...) so that machine noise hits both alike. Reported per mode:

    loss agreement      max |train loss fsdp - train loss ddp| over every logged iteration
    tokens/s            the trainer's own tokens_per_s (all processes), median over its log windows
                        after the first (warm-up); evaluation and the checkpoint only at the end
    held bytes / rank   parameters + gradients + AdamW state a process holds when the optimizer
                        steps (its shards under fsdp), measured on the tensors themselves; DDP's
                        gradient buckets (another copy of the gradients) are not counted
    peak RSS / rank     resource.getrusage(RUSAGE_SELF).ru_maxrss of each process: everything,
                        the Python and torch runtime included (and, on rank 0, the gathered
                        checkpoint at the end)

    python benchmarks/fsdp_ddp.py            # writes benchmarks/results/fsdp_ddp.json
    python benchmarks/fsdp_ddp.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)

MODES = ("ddp", "fsdp")
PROCESSES = 2
CONFIG = {  # 4 layers x 256 wide (3.2M parameters), 2 x 8 sequences of 128 tokens per step
    "model": {"n_layer": 4, "n_head": 4, "n_embd": 256},
    "data": {"block_size": 128},
    "train": {"batch_size": 8, "max_iters": 40, "warmup_iters": 5, "log_interval": 5, "eval_blocks": 16},
}
QUICK = {
    "model": {"n_layer": 2, "n_head": 2, "n_embd": 64},
    "data": {"block_size": 32},
    "train": {"batch_size": 4, "max_iters": 8, "warmup_iters": 2, "log_interval": 2, "eval_blocks": 4},
}


def config_tree(sizes: dict, parallel: str, out_dir: Path) -> dict:
    """The benchmark's training config: `sizes` on tiny-shakespeare, evaluated and saved once, at the end."""
    tree = {
        "run": {"out_dir": str(out_dir), "seed": 7, "threads": 1},
        "data": {"corpus": "tinyshakespeare"} | sizes["data"],
        "model": {"dropout": 0.0} | sizes["model"],
        "train": {"parallel": parallel, "elbo_points": 2, "plot": False} | sizes["train"],
    }
    tree["train"]["eval_interval"] = tree["train"]["max_iters"]
    return tree


# -- one process of a run (under torchrun) ---------------------------------------------------------
def _local_bytes(tensor: torch.Tensor) -> int:
    """Bytes this process holds of `tensor` (its shard of a DTensor)."""
    from torch.distributed.tensor import DTensor

    local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
    return local.numel() * local.element_size()


def worker(tree_path: Path, report_dir: Path) -> None:
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from assay.config import validate
    from assay.train.config import TrainingConfig
    from assay.train.trainer import train

    held = {"parameters": 0, "gradients": 0, "optimizer": 0}

    def before_step(optimizer, args, kwargs):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        now = {
            "parameters": sum(_local_bytes(p) for p in params),
            "gradients": sum(_local_bytes(p.grad) for p in params if p.grad is not None),
            "optimizer": sum(
                _local_bytes(v) for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)
            ),
        }
        if sum(now.values()) > sum(held.values()):
            held.update(now)

    register_optimizer_step_pre_hook(before_step)
    cfg = validate(TrainingConfig, json.loads(tree_path.read_text()))
    train(cfg)
    rank = int(os.environ.get("RANK", "0"))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    (report_dir / f"rank{rank}.json").write_text(json.dumps({"held_bytes": held, "peak_rss_bytes": peak_rss}))


# -- the benchmark ------------------------------------------------------------------------------
def run(sizes: dict, parallel: str, folder: Path) -> dict:
    """One torchrun of `parallel`: its losses, tokens/s windows and per-rank memory."""
    from assay.train.metrics import read_metrics

    folder.mkdir(parents=True)
    tree_path = folder / "config.json"
    tree_path.write_text(json.dumps(config_tree(sizes, parallel, folder / "run")))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={PROCESSES}",
        str(Path(__file__).resolve()),
        "--worker",
        str(tree_path),
        str(folder),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{parallel} run failed:\n{proc.stderr[-3000:]}")
    rows = read_metrics(folder / "run/metrics.jsonl")
    ranks = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(PROCESSES)]
    return {
        "train_loss": [r["train_loss"] for r in rows if "train_loss" in r],
        "tokens_per_s_windows": [r["tokens_per_s"] for r in rows if "tokens_per_s" in r][1:],
        "val_loss": next(r["val_loss"] for r in rows if "val_loss" in r),
        "ranks": ranks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model, one run of each (smoke run)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, alternating")
    parser.add_argument("--out", type=Path, default=RESULTS / "fsdp_ddp.json")
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)  # one torchrun process
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    sizes, rounds = (QUICK, 1) if args.quick else (CONFIG, args.rounds)

    tmp = Path(tempfile.mkdtemp(prefix="assay-fsdp-"))
    os.environ.setdefault("ASSAY_CACHE_DIR", str(tmp / "cache"))  # the token cache, shared by the runs
    try:
        runs = {mode: [] for mode in MODES}
        for i in range(rounds):
            for mode in MODES:
                runs[mode].append(run(sizes, mode, tmp / f"{mode}{i}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = {}
    for mode in MODES:
        first = runs[mode][0]
        held = [r["held_bytes"] for r in first["ranks"]]  # the same in every round: tensor sizes
        rows[mode] = {
            "tokens_per_s": statistics.median(w for r in runs[mode] for w in r["tokens_per_s_windows"]),
            "tokens_per_s_per_round": [statistics.median(r["tokens_per_s_windows"]) for r in runs[mode]],
            "held_bytes_per_rank": held,
            "peak_rss_bytes_per_rank": [
                max(r["ranks"][k]["peak_rss_bytes"] for r in runs[mode]) for k in range(PROCESSES)
            ],
            "final_val_loss": first["val_loss"],
            "train_loss": first["train_loss"],
        }
    ddp, fsdp = rows["ddp"], rows["fsdp"]
    diffs = [abs(a - b) for a, b in zip(ddp["train_loss"], fsdp["train_loss"], strict=True)]
    result_rows = {
        "loss_max_abs_diff": max(diffs),
        "val_loss_abs_diff": abs(ddp["final_val_loss"] - fsdp["final_val_loss"]),
        "tokens_per_s_ratio_fsdp_over_ddp": fsdp["tokens_per_s"] / ddp["tokens_per_s"],
        "held_bytes_ratio_fsdp_over_ddp": max(sum(h.values()) for h in fsdp["held_bytes_per_rank"])
        / max(sum(h.values()) for h in ddp["held_bytes_per_rank"]),
    }

    from rich.table import Table

    params = ddp["held_bytes_per_rank"][0]["parameters"] // 4  # float32
    title = (
        f"FSDP vs DDP: {PROCESSES} processes x 1 thread (CPU, gloo), {params / 1e6:.2f}M parameters, "
        f"{sizes['train']['max_iters']} steps, {rounds} run(s) each; train-loss max |diff| "
        f"{result_rows['loss_max_abs_diff']:.2e}"
    )
    table = Table(title=title)
    for col in (
        "mode",
        "tokens/s",
        "vs ddp",
        "params / grads / AdamW MiB per rank",
        "held vs ddp",
        "peak RSS MiB per rank",
    ):
        table.add_column(col, justify="right")
    mib = 1 / 2**20
    for mode in MODES:
        r = rows[mode]
        h = max(r["held_bytes_per_rank"], key=lambda x: sum(x.values()))
        table.add_row(
            mode,
            f"{r['tokens_per_s']:,.0f}",
            f"{r['tokens_per_s'] / ddp['tokens_per_s']:.2f}x",
            f"{h['parameters'] * mib:.1f} / {h['gradients'] * mib:.1f} / {h['optimizer'] * mib:.1f}",
            f"{sum(h.values()) / max(sum(x.values()) for x in ddp['held_bytes_per_rank']):.2f}x",
            " / ".join(f"{b * mib:.0f}" for b in r["peak_rss_bytes_per_rank"]),
        )

    result = {
        "benchmark": "fsdp_ddp",
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads_per_process": 1},
        "versions": {"torch": torch.__version__},
        "processes": PROCESSES,
        "rounds": rounds,
        "config": config_tree(sizes, "ddp|fsdp", Path("(temporary)")),
        **result_rows,
        "modes": rows,
    }
    report(table, result, args.out)


if __name__ == "__main__":
    main()
