"""Runs and checkpoints that are never lost (docs/reliability.md): no silent overwrite, one writer
per run folder, non-finite losses stop the run, durable swaps that survive a kill at any step, a
full disk that keeps the previous checkpoint, ordinary file permissions."""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from assay.checkpoint_io import resolve_checkpoint
from assay.config import validate
from assay.errors import AssayError, CheckpointError, DataError
from assay.io import atomic_write_json, folder_lock, replace_directory, write_directory
from assay.train.checkpoint import load_checkpoint
from assay.train.config import TrainingConfig
from assay.train.lm_tasks import CORE_TASKS
from assay.train.metrics import read_metrics
from assay.train.trainer import NonFiniteLossError, config_for_resume, train
from tests.conftest import ROOT, assay_cmd, tiny_tree, write_toml

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def config(out, **sections) -> TrainingConfig:
    return validate(TrainingConfig, tiny_tree(out, **sections))


def losses(run_dir: Path) -> dict[int, float]:
    return {r["iter"]: r["train_loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "train_loss" in r}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def assay(capsys, *args) -> tuple[int, str]:
    """`assay ARGS` in this process (no interpreter start-up): (exit status, stderr)."""
    from assay.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    return exit_.value.code, capsys.readouterr().err


def one_error_line(code: int, stderr: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# -- no silent overwrite ------------------------------------------------------------------------
def test_train_refuses_a_folder_holding_a_run_unless_resumed_or_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    path = write_toml(tiny_tree(run, train={"max_iters": 4}), tmp_path / "c.toml")
    assert assay(capsys, "train", "-c", path)[0] == 0
    before = snapshot(run)
    line = one_error_line(*assay(capsys, "train", "-c", path))
    assert "already holds a run (at iter 4)" in line and "--resume" in line and "--overwrite" in line
    assert snapshot(run) == before  # metrics.jsonl, best/ and last/ untouched
    # --overwrite starts afresh: a new log of its own iterations only
    code, err = assay(capsys, "train", "-c", path, "--overwrite", "--set", "train.max_iters=2")
    assert code == 0, err
    assert list(losses(run)) == [1, 2] and load_checkpoint(run, "last").state["iter"] == 2
    assert "exclusive" in one_error_line(*assay(capsys, "train", "--out", run, "--resume", "--overwrite"))


def test_resume_from_a_checkpoint_folder_continues_its_run(tmp_path, capsys):
    run = tmp_path / "run"
    train(config(run, train={"max_iters": 4}))
    code, err = assay(capsys, "train", "--out", run / "last", "--resume", "--set", "train.max_iters=8")
    assert code == 0, err
    assert not (run / "last" / "last").exists() and not (run / "last" / "metrics.jsonl").exists()
    assert load_checkpoint(run, "last").state["iter"] == 8 and list(losses(run)) == list(range(1, 9))


def test_one_writer_per_run_folder(tmp_path):
    cfg = config(tmp_path / "run")
    with folder_lock(tmp_path / "run"), pytest.raises(AssayError, match=r"in use: another process \(pid \d+\)"):
        train(cfg)
    assert not (tmp_path / "run" / "last").exists()
    train(cfg)  # the lock went with its holder
    assert (tmp_path / "run" / "last").is_dir()
    assert not list((tmp_path / "run").glob(".*.tmp"))  # no temporary folder left behind


def test_leftover_temp_folders_of_a_killed_writer_are_removed(tmp_path):
    run = tmp_path / "run"
    leftover = run / ".last.abc123.tmp"
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"half")
    train(config(run))
    assert not leftover.exists()


# -- non-finite losses --------------------------------------------------------------------------
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    task = CORE_TASKS["diffusion"]
    real_loss, calls = task.loss, []

    def loss(self, model, batch):
        value = real_loss(self, model, batch)
        if torch.is_grad_enabled():
            calls.append(1)
            if len(calls) >= 6:
                return value * math.nan
        return value

    monkeypatch.setattr(task, "loss", loss)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at iter 6: stopped.*last/ holds iter 4"):
        train(config(run, train={"max_iters": 12, "eval_interval": 4}))
    ckpt = load_checkpoint(run, "last")
    assert ckpt.state["iter"] == 4
    weights = load_file(str(run / "last" / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    rows = read_metrics(run / "metrics.jsonl")
    assert rows[-1] == {"iter": 6, "event": "non_finite", "what": "training loss"}
    assert all(r.get("train_loss") is not None for r in rows if "train_loss" in r)


def test_a_nan_loss_is_one_error_line(tmp_path, capsys):
    """Through the CLI: an absurd learning rate blows the weights up; the run stops with one line."""
    run = tmp_path / "run"
    tree = tiny_tree(run, train={"max_iters": 40, "lr": 1e12, "warmup_iters": 0, "grad_clip": None})
    line = one_error_line(*assay(capsys, "train", "-c", write_toml(tree, tmp_path / "c.toml")))
    assert "is nan at iter" in line or "is inf at iter" in line
    assert "stopped before the update" in line


# -- durable, atomic writes ---------------------------------------------------------------------
def test_checkpoint_files_and_folders_are_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    run = tmp_path / "run"
    train(config(run, train={"max_iters": 4, "eval_interval": 4}))
    for name in ("last", "best"):
        files = {str(p.relative_to(run / name)) for p in (run / name).rglob("*") if p.is_file()}
        assert "model.safetensors" in files and "optimizer.safetensors" in files
        for rel in files:  # each fsynced in the temporary folder it was written in
            assert any(s.endswith(f".tmp/{rel}") and f"/.{name}." in s for s in synced), (name, rel)
    assert str(run) in synced  # the run folder, after the renames


def test_shards_are_fsynced_with_their_folder(tmp_path, monkeypatch):
    from assay.data.stream import write_shard

    synced: list[str] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))[1])
    path = write_shard(tmp_path / "train", 3, {"x": torch.zeros(4, 2)})
    assert any(s.endswith(".tmp") for s in synced) and str(tmp_path / "train") in synced
    assert path.exists()


def test_a_swap_keeps_the_only_intact_copy_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    """After a kill between the two renames only `<final>.old` is intact; the next swap must not
    delete it before its new folder is in place."""
    final, old = tmp_path / "last", tmp_path / "last.old"
    old.mkdir()
    (old / "model.safetensors").write_text("intact")
    new = tmp_path / ".last.x.tmp"
    new.mkdir()
    (new / "model.safetensors").write_text("new")
    real = os.replace

    def failing_replace(src, dst):
        if Path(src) == new:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        replace_directory(new, final)
    assert (old / "model.safetensors").read_text() == "intact"
    monkeypatch.setattr(os, "replace", real)
    replace_directory(new, final)
    assert (final / "model.safetensors").read_text() == "new" and not old.exists()


def test_reading_prefers_the_intact_copy_of_last_over_an_older_best(tmp_path):
    run = tmp_path / "run"
    train(config(run, train={"max_iters": 8, "eval_interval": 4}))
    shutil.rmtree(run / "best")
    shutil.copytree(run / "last", run / "best")
    (run / "best" / "state.json").write_text(json.dumps({**load_checkpoint(run).state, "iter": 4}))
    os.replace(run / "last", run / "last.old")  # a kill between the two renames of the swap
    assert resolve_checkpoint(run, "last") == run / "last.old"
    assert load_checkpoint(run, "last").state["iter"] == 8
    with pytest.raises(CheckpointError, match="no checkpoint called 'lsat'"):
        resolve_checkpoint(run, "lsat")


# One process that imports assay once, then forks a training run per kill point; the child SIGKILLs
# itself at the k-th step of the saves at iteration 8: writing the model file into the temporary
# folder, or a rename or removal of the directory swaps of last/ and best/. Prints one JSON line per
# run: the kill point and where it struck (null: the run finished, no step left to kill at).
DRIVER = r"""
import json, os, shutil, signal, sys
from pathlib import Path
import assay.train.checkpoint as ck
from assay.train import trainer as tr
from assay.cli.main import main

config, root = sys.argv[1], Path(sys.argv[2])
real_replace, real_rmtree, real_save_model, real_save = os.replace, shutil.rmtree, ck.save_model, tr.Trainer._save

def run(kill_at):
    step, armed = [0], [False]
    note = root / f"k{kill_at}.where"

    def event(what):
        if armed[0]:
            step[0] += 1
            if step[0] == kill_at:
                note.write_text(what)
                os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst, *a, **k):
        if os.path.isdir(src):
            event(f"rename {Path(src).name} -> {Path(dst).name}")
        return real_replace(src, dst, *a, **k)

    def rmtree(path, *a, **k):
        event(f"remove {Path(path).name}")
        return real_rmtree(path, *a, **k)

    def save_model(*a, **k):
        event("write model.safetensors")
        return real_save_model(*a, **k)

    def save(self, name):
        armed[0] = self.iter == 8
        return real_save(self, name)

    os.replace, shutil.rmtree, ck.save_model, tr.Trainer._save = replace, rmtree, save_model, save
    main(["train", "-c", config, "--set", f"run.out_dir={root / f'k{kill_at}'}"])

for kill_at in range(1, 20):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            run(kill_at)
        except SystemExit as exit_:
            code = exit_.code
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    where = (root / f"k{kill_at}.where").read_text() if killed else None
    print(json.dumps({"kill_at": kill_at, "where": where, "status": status}), flush=True)
    if not killed:
        break
"""


def test_a_kill_at_every_step_of_a_checkpoint_swap_resumes_exactly(tmp_path, capsys):
    sections = {"train": {"max_iters": 12, "eval_interval": 4}, "model": {"dropout": 0.1}}
    straight = tmp_path / "straight"
    train(config(straight, **sections))
    want = losses(straight)
    path = write_toml(tiny_tree(tmp_path / "unused", **sections), tmp_path / "c.toml")
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(path), str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    kills = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert kills[-1]["where"] is None and kills[-1]["status"] == 0  # the last run was not killed: it finished
    kills = kills[:-1]
    assert len(kills) >= 7, kills  # the model file, then 3 steps of each swap (last/, best/)
    results = []
    for kill in kills:
        run, where = tmp_path / f"k{kill['kill_at']}", kill["where"]
        resumed_from = resolve_checkpoint(run, "last")
        assert resumed_from.name in ("last", "last.old"), where  # never the older best/
        ckpt = load_checkpoint(run, "last")
        train(config_for_resume(ckpt, run, []), resume=ckpt)
        assert losses(run) == want, where  # the same losses as a run never killed
        assert load_checkpoint(run, "last").state["iter"] == 12 and not (run / "last.old").exists()
        assert not list(run.glob(".*.tmp")), where  # the killed writer's leftovers are gone
        results.append((kill["kill_at"], where, resumed_from.name, ckpt.state["iter"]))
    with capsys.disabled():
        print("\nkill point | killed at | resumed from | at iter")
        for row in results:
            print(" | ".join(map(str, row)))


# -- full disk ----------------------------------------------------------------------------------
def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_is_one_error_line_and_keeps_the_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(config(run, train={"max_iters": 4, "eval_interval": 4}))  # also fills the token cache
    before = {name: snapshot(run / name) for name in ("last", "best")}
    assert (run / "last" / "model.safetensors").stat().st_size > 100_000
    proc = subprocess.run(
        [*assay_cmd(), "train", "--out", str(run), "--resume", "--set", "train.max_iters=8"],
        env=ENV,
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit(100_000),  # smaller than model.safetensors: the save at iter 8 fails
    )
    line = one_error_line(proc.returncode, proc.stderr)
    assert line.startswith(f"error: cannot write the checkpoint {run / 'last'} (disk full")
    assert line.endswith("the previous one is kept")
    assert {name: snapshot(run / name) for name in ("last", "best")} == before
    assert not list(run.glob(".*.tmp"))


# -- wrong inputs -------------------------------------------------------------------------------
def test_resuming_on_a_stream_remade_with_another_tokenizer_is_refused(tmp_path):
    from assay.data.produce import produce_stream

    def tree(corpus):
        t = tiny_tree(tmp_path / "run", stream={"shard_size": 8, "val_shards": 2, "max_backlog": None})
        t["data"].update({"stream": str(tmp_path / "s"), "corpus": corpus})
        t["train"].update({"max_iters": 4, "eval_interval": 4})
        return validate(TrainingConfig, t)

    produce_stream(tree("tinyshakespeare"), tmp_path / "s", shards=8, show=False)
    train(tree("tinyshakespeare"))
    shutil.rmtree(tmp_path / "s")
    produce_stream(tree("kjv"), tmp_path / "s", shards=8, show=False)  # another corpus: another vocabulary
    ckpt = load_checkpoint(tmp_path / "run", "last")
    with pytest.raises(DataError, match="made with another tokenizer than the checkpoint's"):
        train(config_for_resume(ckpt, tmp_path / "run", ["train.max_iters=8"]), resume=ckpt)


# -- permissions --------------------------------------------------------------------------------
def test_results_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        write_directory(tmp_path / "d", lambda tmp: (tmp / "f.txt").write_text("x"))
        train(config(tmp_path / "run", train={"max_iters": 4, "eval_interval": 4}))
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run" / "last").iterdir() if p.is_file()}
    assert set(modes.values()) == {0o644}, modes  # config.json like model.safetensors
