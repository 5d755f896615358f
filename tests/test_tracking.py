"""Experiment tracking (assay.tracking): TensorBoard event files and offline W&B runs hold what
metrics.jsonl holds, at the same steps, with the config; a resumed run continues its tracker run;
a missing extra is one error line; secrets never reach the tracker or the run folder."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from assay.config import validate
from assay.tracking import REDACTED, TrackingSettings, open_tracker, redact
from assay.train.config import TrainingConfig
from assay.train.metrics import read_metrics
from assay.train.trainer import train
from tests.conftest import tiny_tree

RUN = {"max_iters": 6, "log_interval": 1, "eval_interval": 3}


def config(out: Path, backend: str, **train_keys) -> TrainingConfig:
    tree = tiny_tree(out, train={**RUN, **train_keys})
    tree["log"] = {"backend": backend, "wandb_run_name": "tiny"}
    return validate(TrainingConfig, tree)


def logged(run: Path, name: str) -> dict[int, float]:
    return {r["iter"]: r[name] for r in read_metrics(run / "metrics.jsonl") if r.get(name) is not None}


def tensorboard_scalars(run: Path) -> dict[str, dict[int, float]]:
    """Every scalar of the run's event files, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def wandb_records(run_file: Path) -> list:
    """The protobuf records of an offline W&B run file (`run-ID.wandb`): a 7-byte header (':W&B',
    magic, version), then LevelDB-log blocks of 32 KiB, each record a 7-byte header (CRC, length,
    type: 1 full, 2 first, 3 middle, 4 last) and its data."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    records, chunk, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
        elif kind == 0:
            break
    return records


def wandb_history(run_dir: Path) -> tuple[dict[str, dict[int, float]], dict, list[str]]:
    """(metric -> step -> value, config, run ids) of every offline W&B run under `run_dir`."""
    history: dict[str, dict[int, float]] = {}
    config: dict = {}
    ids = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                ids.append(record.run.run_id)
                config |= {u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in record.run.config.update}
            elif kind == "config":
                config |= {u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in record.config.update}
            elif kind == "history":
                items = {u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in record.history.item}
                step = items.pop("_step")
                for key, value in items.items():
                    if not key.startswith("_"):
                        history.setdefault(key, {})[step] = value
    return history, config, ids


def test_tensorboard_holds_the_losses_of_metrics_jsonl_at_the_same_steps(tmp_path):
    run = tmp_path / "run"
    train(config(run, "tensorboard"))
    scalars = tensorboard_scalars(run)
    for name in ("train_loss", "val_loss", "lr"):
        assert scalars[name] == pytest.approx(logged(run, name), rel=1e-6), name
    assert sorted(scalars["val_loss"]) == [3, 6]


def test_wandb_offline_run_holds_the_config_and_the_losses(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)  # no key: offline by default
    run = tmp_path / "run"
    train(config(run, "wandb"))
    history, cfg, ids = wandb_history(run)
    assert history["train_loss"] == pytest.approx(logged(run, "train_loss"), rel=1e-6)
    assert history["val_loss"] == pytest.approx(logged(run, "val_loss"), rel=1e-6)
    assert cfg["train"]["max_iters"] == 6 and cfg["log"]["backend"] == "wandb"
    state = json.loads((run / "tracking.json").read_text())
    assert ids == [state["wandb_id"]] and state["wandb_mode"] == "offline"


def test_a_resumed_run_continues_the_same_tracker_run_and_step(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for backend in ("tensorboard", "wandb"):
        run = tmp_path / backend
        train(config(run, backend, max_iters=3))
        from assay.train.checkpoint import load_checkpoint
        from assay.train.trainer import config_for_resume

        resumed = load_checkpoint(run, "last")
        train(config_for_resume(resumed, run, ["train.max_iters=6"]), resume=resumed)
        expected = logged(run, "train_loss")
        assert sorted(expected) == [1, 2, 3, 4, 5, 6]
        if backend == "tensorboard":
            assert tensorboard_scalars(run)["train_loss"] == pytest.approx(expected, rel=1e-6)
        else:
            history, _, ids = wandb_history(run)
            assert history["train_loss"] == pytest.approx(expected, rel=1e-6)
            assert len(ids) == 2 and len(set(ids)) == 1  # two sessions of one W&B run (resumed by id)


def test_a_missing_tracker_extra_is_one_error_line_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    from assay.cli.main import main

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if `assay[wandb]` were not installed
    run = tmp_path / "run"
    tree = tmp_path / "tiny.toml"
    from tests.conftest import write_toml

    write_toml(tiny_tree(run, train=RUN), tree)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "-c", str(tree), "--set", "log.backend=wandb"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1
    assert err[0].startswith("error:") and "pip install 'assay[wandb]'" in err[0]
    assert not run.exists()


def test_secrets_never_reach_the_tracker(tmp_path, monkeypatch):
    assert redact({"llm": {"api_key": "sk-1", "api_key_env": "OPENAI_API_KEY", "token": None}, "lr": 1}) == {
        "llm": {"api_key": REDACTED, "api_key_env": "OPENAI_API_KEY", "token": None},
        "lr": 1,
    }
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    secret = "sk-live-0123456789abcdef"
    for backend in ("tensorboard", "wandb"):
        out = tmp_path / backend
        tracker = open_tracker(
            TrackingSettings(backend=backend), out, {"llm": {"api_key": secret, "model": "m"}, "seed": 1}
        )
        tracker.log({"loss": 1.0}, step=1)
        tracker.summary({"run": {"rows": 3}})
        tracker.close()
        leaked = [p for p in out.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert not leaked, leaked


def test_overwrite_starts_the_tracker_afresh(tmp_path):
    run = tmp_path / "run"
    train(config(run, "tensorboard"))
    train(config(run, "tensorboard", max_iters=2), overwrite=True)
    assert sorted(tensorboard_scalars(run)["train_loss"]) == [1, 2]  # the old run's events went with it
