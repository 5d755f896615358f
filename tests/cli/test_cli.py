"""The command contract, through real `assay` processes."""

import json
import os
import subprocess

import pytest

from assay.config import validate
from assay.judges.tasks import TASKS as JUDGE_TASKS
from assay.train.config import TrainingConfig
from assay.train.trainer import train
from tests.conftest import ROOT, assay_cmd, tiny_tree, write_toml

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def assay(*args, check=True):
    proc = subprocess.run([*assay_cmd(), *map(str, args)], env=ENV, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def folder_bytes(folder) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` (but a writer's .lock): its bytes and mtime."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    train(validate(TrainingConfig, tiny_tree(out, train={"max_iters": 20, "eval_interval": 10})))
    return out


def test_train_via_cli_with_overrides(tmp_path):
    cfg = write_toml(tiny_tree(tmp_path / "x"), tmp_path / "c.toml")
    proc = assay("train", "-c", cfg, "--set", "train.max_iters=3", "--set", "train.eval_interval=3")
    assert "validation loss" in proc.stdout and "run saved to" in proc.stdout
    saved = json.loads((tmp_path / "x/config.json").read_text())
    assert saved["train"]["max_iters"] == 3 and saved["model"]["vocab_size"] == 69


def test_generate_json_and_text(run_dir):
    out = json.loads(assay("generate", run_dir, "--length", 40, "--steps", 5, "--seed", 3, "--json").stdout)
    assert len(out["text"]) == 40 and "[MASK]" not in out["text"]
    assert out["objective"] == "diffusion" and out["seed"] == 3
    again = json.loads(assay("generate", run_dir, "--length", 40, "--steps", 5, "--seed", 3, "--json").stdout)
    assert again["text"] == out["text"]
    plain = assay("generate", run_dir, "--length", 20, "--steps", 4, "--prompt", "ROMEO:").stdout
    assert plain.startswith("ROMEO:")
    assert out["sampler"] == "ancestral" and out["eta"] is None  # the default sampler
    remdm = json.loads(assay("generate", run_dir, "--length", 30, "--sampler", "remdm", "--eta", 0.1, "--json").stdout)
    assert remdm["sampler"] == "remdm" and remdm["eta"] == 0.1 and len(remdm["text"]) == 30
    bad = assay("generate", run_dir, "--sampler", "sideways", check=False)
    assert bad.returncode != 0 and "--sampler must be one of" in bad.stderr


def test_eval_json(run_dir):
    out = json.loads(assay("eval", run_dir, "--json", "--blocks", 8, "--elbo-points", 2).stdout)
    assert out["val_loss"] > 0 and out["bits_per_char"] == out["val_elbo_bits_per_char"]
    assert out["val_samples"] == 8 and out["iter"] == 20


def test_resume_via_cli(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    proc = assay("train", "--out", copy, "--resume", "--set", "train.max_iters=24")
    assert "after 24 iterations" in proc.stdout
    assert json.loads((copy / "last/state.json").read_text())["iter"] == 24


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "-c", "missing.toml"], ["config not found: missing.toml", "shakespeare_char"]),
        (["train", "--set", "model.n_layr=2"], ["model.n_layr: unknown key", "n_layer"]),
        (["train", "--set", "train.max_iters=-5"], ["train.max_iters"]),
        (["train", "--set", "data.corpus=/no/such/corpus.txt"], ["neither a shipped corpus"]),
        (["train", "--set", "nokey"], ["key=value"]),
        (["generate", "/no/such/run"], ["does not exist"]),
        (["eval", "/no/such/run"], ["does not exist"]),
        (["train", "--frobnicate"], ["No such option"]),
    ],
)
def test_user_errors_are_one_line(args, fragments):
    assert_one_line_error(assay(*args, check=False), *fragments)


def test_corrupt_checkpoint_is_one_line(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "corrupt"
    shutil.copytree(run_dir, copy)
    (copy / "best/model.safetensors").write_bytes(b"garbage")
    assert_one_line_error(assay("generate", copy, check=False), "cannot load model.safetensors")
    (copy / "last/state.json").write_text("[")
    before = folder_bytes(copy)
    assert_one_line_error(assay("train", "-o", copy, "--resume", check=False), "corrupt")
    assert folder_bytes(copy) == before  # nothing written on failure


def test_help_is_instant_and_lists_commands():
    proc = assay("--help")
    for command in ("train", "generate", "eval"):
        assert command in proc.stdout


def test_eval_of_a_judge_and_report(tmp_path, tiny_lm, tiny_stream):
    from tests.conftest import stream_tree

    tree = stream_tree(tmp_path / "scorer", tiny_stream, tiny_lm, train={"max_iters": 4, "eval_interval": 4})
    train(validate(TrainingConfig, tree), tasks=JUDGE_TASKS)
    out = json.loads(assay("eval", tmp_path / "scorer", "--json").stdout)
    assert out["objective"] == "sequence_scoring" and out["val_samples"] == 32
    assert {"val_pearson", "val_mae", "baseline_pearson"} <= set(out)
    table = assay("report", tmp_path / "scorer", tiny_lm).stdout
    assert "pearson" in table and "bits/char (ELBO)" in table
    assert_one_line_error(assay("report", tmp_path, check=False), "no eval.json")
