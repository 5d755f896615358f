"""`assay train`'s user interface: -o/--out, --resume (a flag: the run in the output folder, its saved
config), --overwrite, --print-config, what it prints before and after; and `assay data produce`,
which refuses to fill a disk."""

from __future__ import annotations

import json
import tomllib
from types import SimpleNamespace

import pytest

from assay.cli.train import _next_steps
from assay.config import validate
from assay.train.checkpoint import load_checkpoint
from assay.train.config import TrainingConfig
from tests.conftest import one_error, run_cli, tiny_tree, write_toml

TINY = ["--set", "train.max_iters=4", "--set", "train.eval_interval=2"]


@pytest.fixture
def config(tmp_path):
    return write_toml(tiny_tree(tmp_path / "from-config"), tmp_path / "tiny.toml")


def test_out_sets_the_run_folder_and_the_run_says_where_and_how_to_go_on(config, tmp_path, capsys):
    run_dir = tmp_path / "mine"
    code, out, err = run_cli(capsys, "train", "-c", config, "-o", run_dir, *TINY)
    assert code == 0, err
    assert err.startswith(f"assay train: a new run in {run_dir} (config {config}, 2 --set)\n")
    for line in ("  objective  diffusion (language model, bidirectional attention)", "  device     cpu"):
        assert line in err
    assert not (tmp_path / "from-config").exists() and (run_dir / "last").is_dir()
    assert json.loads((run_dir / "config.json").read_text())["run"]["out_dir"] == str(run_dir)
    assert f"use it:    assay generate {run_dir} --length 200" in out
    assert f"train on:  assay train --out {run_dir} --resume --set train.max_iters=8" in out


def test_resume_continues_the_run_in_the_output_folder_with_its_saved_config(config, tmp_path, capsys):
    run_dir = tmp_path / "mine"
    assert run_cli(capsys, "train", "-c", config, "-o", run_dir, *TINY)[0] == 0
    # a -c given with --resume only names the folder: its other keys are not used
    other = write_toml(tiny_tree(run_dir, train={"lr": 0.5}), tmp_path / "other.toml")
    code, _, err = run_cli(capsys, "train", "-c", other, "--resume", "--set", "train.max_iters=6")
    assert code == 0, err
    assert err.startswith(f"assay train: continuing {run_dir} from iter 4 (its saved config, 1 --set; -c {other} ")
    ckpt = load_checkpoint(run_dir, "last")
    assert ckpt.state["iter"] == 6 and ckpt.config.train.lr == 1e-3 and ckpt.config.train.max_iters == 6
    # --out RUN/last continues RUN
    assert run_cli(capsys, "train", "--out", run_dir / "last", "--resume", "--set", "train.max_iters=8")[0] == 0
    assert load_checkpoint(run_dir, "last").state["iter"] == 8 and not (run_dir / "last" / "last").exists()


def test_resume_needs_a_run_and_excludes_overwrite(tmp_path, capsys):
    line = one_error(*run_cli(capsys, "train", "--out", tmp_path / "none", "--resume")[::2])
    assert line == f"error: nothing to resume: {tmp_path / 'none'} does not exist"
    line = one_error(*run_cli(capsys, "train", "--out", tmp_path / "none", "--resume", "--overwrite")[::2])
    assert "--resume and --overwrite are exclusive" in line


def test_a_folder_holding_a_run_is_refused_naming_both_ways_on(config, tmp_path, capsys):
    run_dir = tmp_path / "mine"
    assert run_cli(capsys, "train", "-c", config, "-o", run_dir, *TINY)[0] == 0
    code, _, err = run_cli(capsys, "train", "-c", config, "-o", run_dir, *TINY)
    assert one_error(code, err) == (
        f"error: {run_dir} already holds a run (at iter 4): continue it with --resume (assay train --out "
        f"{run_dir} --resume), or start afresh with --overwrite (its checkpoints and metrics are deleted)"
    )
    assert "assay train: a new run" not in err  # no promise of a new run it is about to refuse
    code, _, err = run_cli(capsys, "train", "-c", config, "-o", run_dir, "--overwrite", *TINY)
    assert code == 0 and err.startswith(f"assay train: starting afresh in {run_dir} "), err


def test_without_a_config_it_says_it_trains_the_defaults(tmp_path, capsys):
    small = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "data.block_size=16", "train.max_iters=1"]
    small += ["train.batch_size=2", "train.eval_interval=1", "train.eval_blocks=1", "train.plot=false"]
    code, _, err = run_cli(capsys, "train", "-o", tmp_path / "d", *[a for s in small for a in ("--set", s)])
    assert code == 0, err
    assert err.startswith(f"assay train: a new run in {tmp_path / 'd'} (no -c: the built-in defaults, 9 --set)")


def test_print_config_prints_the_resolved_config_and_trains_nothing(config, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "train", "-c", config, "-o", tmp_path / "x", "--set", "train.lr=3e-4", "--print-config"
    )
    assert code == 0 and err == "", err
    printed = tomllib.loads(out)
    assert printed["run"]["out_dir"] == str(tmp_path / "x") and printed["train"]["lr"] == 3e-4
    assert printed["model"]["n_layer"] == 2 and printed["masking"]["stages"][0]["kind"] == "random"
    assert not (tmp_path / "x").exists()


def test_a_judges_next_steps_score_it(tmp_path):
    cfg = validate(TrainingConfig, tiny_tree(tmp_path / "j", model={"mode": "sequence_scorer"}, data={"stream": "s"}))
    done = SimpleNamespace(out_dir=tmp_path / "j", iters=8, interrupted=False)
    assert _next_steps(cfg, done)[0] == f"use it:    assay score {tmp_path / 'j'} 'a text to judge'"
    stopped = SimpleNamespace(out_dir=tmp_path / "j", iters=3, interrupted=True)
    assert _next_steps(cfg, stopped) == [f"continue:  assay train --out {tmp_path / 'j'} --resume"]


def test_produce_refuses_an_endless_stream_without_a_backlog_limit(tmp_path, capsys):
    config = write_toml(tiny_tree(tmp_path / "unused", stream={"max_backlog": "none"}), tmp_path / "p.toml")
    line = one_error(*run_cli(capsys, "data", "produce", "-c", config, "-o", tmp_path / "s")[::2])
    assert line == (
        "error: without --shards the producer runs until stopped, and stream.max_backlog = none would let it "
        "fill the disk: pass --shards N, or limit the backlog (--set stream.max_backlog=16)"
    )
    assert not (tmp_path / "s").exists()
    code, out, err = run_cli(capsys, "data", "produce", "-c", config, "-o", tmp_path / "s", "--shards", "1")
    assert code == 0 and "1 train and 4 validation shards" in out, err


def test_the_sampler_default_shown_is_the_real_one():
    from assay.cli.train import DEFAULT_SAMPLER_SHOWN
    from assay.generate import DEFAULT_SAMPLER

    assert DEFAULT_SAMPLER_SHOWN == DEFAULT_SAMPLER
