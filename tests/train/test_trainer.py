import json
import os
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from assay.config import validate
from assay.errors import CheckpointError, ConfigError
from assay.train.checkpoint import load_checkpoint
from assay.train.config import TrainingConfig
from assay.train.metrics import read_metrics
from assay.train.trainer import config_for_resume, train
from tests.conftest import ROOT, assay_cmd, tiny_tree, write_toml

STAGES = {"patience": 1, "stages": [{"kind": "random", "rate": [0.0, 1.0]}, {"kind": "sticky", "rate": 0.5}]}


def config(out, **sections) -> TrainingConfig:
    return validate(TrainingConfig, tiny_tree(out, **sections))


def losses(run_dir):
    return {r["iter"]: r["train_loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "train_loss" in r}


def test_diffusion_run_writes_everything_and_learns(tmp_path):
    cfg = config(tmp_path / "run", train={"max_iters": 30, "eval_interval": 10, "plot": True, "lr": 3e-3})
    result = train(cfg)
    out = tmp_path / "run"
    for name in ("metrics.jsonl", "loss.png", "config.json", "eval.json", "best/model.safetensors", "last/state.json"):
        assert (out / name).exists(), name
    rows = read_metrics(out / "metrics.jsonl")
    train_rows = [r for r in rows if "train_loss" in r]
    evals = [r for r in rows if "val_loss" in r]
    assert [r["iter"] for r in train_rows] == list(range(1, 31))
    assert [r["iter"] for r in evals] == [10, 20, 30]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    assert sum(r["train_loss"] for r in train_rows[-5:]) < sum(r["train_loss"] for r in train_rows[:5])
    final = json.loads((out / "eval.json").read_text())
    assert final["bits_per_char"] == final["val_elbo_bits_per_char"] == result.final["bits_per_char"]
    assert final["val_bits_per_token"] == pytest.approx(final["val_loss"] / 0.6931471805599453)
    ckpt = load_checkpoint(out, "last")
    assert ckpt.state["iter"] == 30 and ckpt.config.model.vocab_size == 69
    assert "head.weight" not in load_file(str(out / "last/model.safetensors"))  # tied: stored once


def test_autoregressive_run_reports_bits_per_char(tmp_path):
    cfg = config(tmp_path / "ar", model={"attention": "causal"})
    result = train(cfg)
    assert result.final["bits_per_char"] == pytest.approx(result.final["val_loss"] / 0.6931471805599453)
    assert "val_elbo_bits_per_char" not in result.final


def test_resume_continues_exactly(tmp_path):
    """A run stopped at iter 8 and resumed to 16 logs the same losses as one that ran 16."""
    sections = {
        "train": {"max_iters": 16, "lr_decay_iters": 16, "grad_accum": 2},
        "model": {"dropout": 0.1},
        "masking": STAGES,
    }
    full = train(config(tmp_path / "full", **sections))
    part_cfg = config(tmp_path / "part", **sections)
    part_cfg.train.max_iters = 8
    train(part_cfg)
    ckpt = load_checkpoint(tmp_path / "part", "last")
    resumed = train(config_for_resume(ckpt, tmp_path / "part", ["train.max_iters=16"]), resume=ckpt)
    a, b = losses(tmp_path / "full"), losses(tmp_path / "part")
    assert list(a) == list(b) == list(range(1, 17))
    assert a == b  # bit-for-bit
    assert full.final["val_loss"] == resumed.final["val_loss"]
    stages = lambda d: [r["stage"] for r in read_metrics(d / "metrics.jsonl") if "stage" in r and "val_loss" in r]  # noqa: E731
    assert stages(tmp_path / "full") == stages(tmp_path / "part")
    wa = load_file(str(tmp_path / "full/last/model.safetensors"))
    wb = load_file(str(tmp_path / "part/last/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ctrl_c_and_sigterm_save_and_resume_matches_uninterrupted(tmp_path):
    """Real interruptions: SIGINT (Ctrl-C) or SIGTERM (preemption, torchrun shutting down) mid-run
    saves last/; resuming ends where a straight run does."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sections = {"train": {"max_iters": 200, "eval_interval": 100}, "model": {"dropout": 0.1}}

    def command(out):
        path = write_toml(tiny_tree(out, **sections), tmp_path / f"{out.name}.toml")
        return [*assay_cmd(), "train", "-c", str(path)]

    for signum, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        out = tmp_path / f"stopped-{name}"
        proc = subprocess.Popen(command(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        metrics = out / "metrics.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and (not metrics.exists() or len(read_metrics(metrics)) < 20):
            time.sleep(0.02)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"interrupted ({name}) at iter" in err
        stopped_at = load_checkpoint(out, "last").state["iter"]
        assert 20 <= stopped_at < 200  # saved at the interruption
        ckpt = load_checkpoint(out, "last")  # resumed in this process: only the interruption needs its own
        train(config_for_resume(ckpt, out, []), resume=ckpt)
    train(config(tmp_path / "straight", **sections))
    for name in ("Ctrl-C", "SIGTERM"):
        assert losses(tmp_path / f"stopped-{name}") == losses(tmp_path / "straight")


def test_resume_refuses_to_change_the_model(tmp_path):
    train(config(tmp_path / "r"))
    ckpt = load_checkpoint(tmp_path / "r", "last")
    with pytest.raises(ConfigError, match="cannot change model.n_layer"):
        config_for_resume(ckpt, tmp_path / "r", ["model.n_layer=3"])
    with pytest.raises(ConfigError, match="cannot change masking.stages"):
        config_for_resume(ckpt, tmp_path / "r", ["masking.stages.0.rate=0.5"])


def test_curriculum_advances_and_reports_every_stage(tmp_path):
    # a learning rate of ~0 stalls the validation loss: patience 1 moves the curriculum on
    sections = {
        "masking": STAGES | {"min_delta": 0.01},
        "train": {"max_iters": 20, "eval_interval": 2, "lr": 1e-8, "min_lr": 1e-9, "warmup_iters": 0},
    }
    train(config(tmp_path / "c", **sections))
    rows = read_metrics(tmp_path / "c" / "metrics.jsonl")
    evals = [r for r in rows if "val_loss" in r]
    assert all("val_loss/0" in r and "val_loss/1" in r for r in evals)
    assert any(r.get("event") == "stage" for r in rows)
    assert evals[-1]["stage"] == 1


def test_corrupt_checkpoints_are_clear_errors(tmp_path):
    train(config(tmp_path / "r"))
    last = tmp_path / "r" / "last"
    (last / "model.safetensors").write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointError, match="cannot load model.safetensors"):
        load_checkpoint(last).build_model()
    (last / "state.json").write_text("{")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(last)
    (last / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json missing"):
        load_checkpoint(last)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    assert load_checkpoint(tmp_path / "r").directory.name == "best"  # best is untouched


def test_compile_matches_eager(tmp_path):
    eager = train(config(tmp_path / "e", train={"max_iters": 4}))
    compiled = train(config(tmp_path / "c", train={"compile": True, "max_iters": 4}))
    assert compiled.final["val_loss"] == pytest.approx(eager.final["val_loss"], rel=1e-4)


def test_compile_failure_falls_back_to_eager_with_a_warning(tmp_path, monkeypatch, capsys):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken_compile)
    eager = train(config(tmp_path / "e", train={"max_iters": 4}))
    fallback = train(config(tmp_path / "c", train={"compile": True, "max_iters": 4}))
    assert "torch.compile failed (RuntimeError: InvalidCxxCompiler" in capsys.readouterr().err
    assert fallback.final["val_loss"] == eager.final["val_loss"]  # the trial step consumed no randomness
