"""Two real processes under torchrun (gloo on CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assay.train.metrics import read_metrics
from tests.conftest import ROOT, tiny_tree, write_toml


def torch_env() -> dict[str, str]:
    """The environment of a training subprocess: this checkout importable, one thread per process."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def torchrun(*args, processes: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=PROCESSES -m assay ARGS`; fails the test unless it exits 0."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "assay",
        *map(str, args),
    ]
    proc = subprocess.run(cmd, env=torch_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def train_losses(run: Path) -> list[float]:
    return [r["train_loss"] for r in read_metrics(run / "metrics.jsonl") if "train_loss" in r]


def val_losses(run: Path) -> list[float]:
    return [r["val_loss"] for r in read_metrics(run / "metrics.jsonl") if "val_loss" in r]


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process_with_the_global_batch(tmp_path):
    """DDP with 2 ranks x 4 sequences sees the same data as 1 process x 8 and averages the same
    gradients, so a causal LM (every position supervised, no dropout) logs the same losses."""
    sections = {"model": {"attention": "causal"}, "train": {"max_iters": 6, "eval_interval": 3}}
    two = tiny_tree(tmp_path / "ddp", **sections)
    two["train"]["batch_size"] = 4
    two["log"] = {"backend": "tensorboard"}
    proc = torchrun("train", "-c", write_toml(two, tmp_path / "ddp.toml"))
    state = json.loads((tmp_path / "ddp/last/state.json").read_text())
    assert state["world_size"] == 2
    assert (tmp_path / "ddp/last/rank1.safetensors").exists()
    assert proc.stdout.count("run saved to") == 1  # rank 0 alone reports
    assert len(list((tmp_path / "ddp/tensorboard").glob("events.out.tfevents.*"))) == 1  # and alone tracks

    one = tiny_tree(tmp_path / "single", **sections)
    single = subprocess.run(
        [sys.executable, "-m", "assay", "train", "-c", str(write_toml(one, tmp_path / "one.toml"))],
        env=torch_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    ddp, ref = tmp_path / "ddp", tmp_path / "single"
    assert len(train_losses(ddp)) == 6
    assert train_losses(ddp) == pytest.approx(train_losses(ref), rel=1e-4)
    assert val_losses(ddp) == pytest.approx(val_losses(ref), rel=1e-4)
