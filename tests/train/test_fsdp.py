"""train.parallel = fsdp: two real processes under torchrun (gloo on CPU), against DDP; its full
checkpoint read by one process.

One set of runs serves every test: a causal LM (every position supervised, no dropout) with
gradient accumulation, gradient clipping that bites and an EMA of the weights, trained 8 steps
with ddp, 8 with fsdp, and 4 with fsdp then resumed to 8.
"""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from assay.config import validate
from assay.errors import ConfigError
from assay.train.checkpoint import load_checkpoint
from assay.train.config import TrainingConfig
from assay.train.trainer import config_for_resume, train
from tests.conftest import run_cli, tiny_tree, write_toml
from tests.train.test_distributed import torchrun, train_losses, val_losses

pytestmark = pytest.mark.slow

SECTIONS = {
    "model": {"attention": "causal"},
    "train": {
        "max_iters": 8,
        "lr_decay_iters": 8,  # the schedule of 8 steps, also for the run stopped at 4
        "eval_interval": 4,
        "batch_size": 4,  # per process
        "grad_accum": 2,
        "grad_clip": 0.05,  # below the gradient norm: clipping changes every step
        "ema_decay": 0.9,
    },
}
FILES = ("model.safetensors", "training.safetensors", "optimizer.safetensors")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")

    def run(name, parallel, **train):
        tree = tiny_tree(root / name, **SECTIONS)
        tree["train"].update(parallel=parallel, **train)
        torchrun("train", "-c", write_toml(tree, root / f"{name}.toml"))
        return root / name

    out = {"ddp": run("ddp", "ddp"), "fsdp": run("fsdp", "fsdp"), "part": run("part", "fsdp", max_iters=4)}
    shutil.copytree(out["part"], root / "at4")  # resumed in one process by a test
    out["at4"] = root / "at4"
    torchrun("train", "--out", out["part"], "--resume", "--set", "train.max_iters=8")
    return out


def test_fsdp_logs_the_losses_of_ddp(runs):
    ddp, fsdp = runs["ddp"], runs["fsdp"]
    assert len(train_losses(fsdp)) == 8 and len(val_losses(fsdp)) == 2
    assert train_losses(fsdp) == pytest.approx(train_losses(ddp), abs=1e-5)
    assert val_losses(fsdp) == pytest.approx(val_losses(ddp), abs=1e-5)
    # the checkpoint a sharded model writes is the one a replicated one writes
    assert json.loads((fsdp / "last/state.json").read_text())["world_size"] == 2
    for name in FILES:
        a, b = load_file(str(ddp / "last" / name)), load_file(str(fsdp / "last" / name))
        assert a.keys() == b.keys(), name
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), name
        with safe_open(str(ddp / "last" / name), "pt") as x, safe_open(str(fsdp / "last" / name), "pt") as y:
            assert x.metadata() == y.metadata(), name  # e.g. the tied head stored once, by the same name
    assert json.loads((ddp / "last/optimizer.json").read_text()) == json.loads(
        (fsdp / "last/optimizer.json").read_text()
    )


def test_the_fsdp_checkpoint_evaluates_and_generates_in_one_process(runs, capsys):
    fsdp = runs["fsdp"]
    code, out, err = run_cli(capsys, "eval", fsdp, "--checkpoint", "last", "--blocks", 8, "--json")
    assert code == 0, err
    trained = json.loads((fsdp / "eval.json").read_text())
    assert json.loads(out)["val_loss"] == pytest.approx(trained["val_loss"], abs=1e-5)
    code, out, err = run_cli(capsys, "generate", fsdp, "--length", 20, "--prompt", "ROMEO:", "--json")
    assert code == 0, err
    assert json.loads(out)["text"].startswith("ROMEO:")


def test_fsdp_resumes_exactly_at_two_processes(runs):
    full, part = runs["fsdp"], runs["part"]
    assert train_losses(part) == train_losses(full)  # bit for bit
    assert val_losses(part) == val_losses(full)
    for name in FILES:
        a, b = load_file(str(full / "last" / name)), load_file(str(part / "last" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_an_fsdp_checkpoint_resumes_in_one_process(runs):
    """Saved by 2 processes x 4 sequences at iter 4, resumed by 1 process x 8: the same global batch
    (the data cursor counts every rank's blocks), so the same losses as the 2-process run."""
    run = runs["at4"]
    ckpt = load_checkpoint(run, "last")
    assert ckpt.state["iter"] == 4 and ckpt.state["world_size"] == 2
    model = ckpt.build_model()
    saved = load_file(str(run / "last/model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)
    train(config_for_resume(ckpt, run, ["train.max_iters=8", "train.batch_size=8"]), resume=ckpt)
    assert train_losses(run)[4:] == pytest.approx(train_losses(runs["fsdp"])[4:], rel=1e-4)
    assert val_losses(run) == pytest.approx(val_losses(runs["fsdp"]), rel=1e-4)


def test_fsdp_refuses_torch_compile(tmp_path):
    tree = tiny_tree(tmp_path / "r", train={"parallel": "fsdp", "compile": True})
    with pytest.raises(ConfigError, match="compile is not supported with parallel = fsdp"):
        validate(TrainingConfig, tree)
