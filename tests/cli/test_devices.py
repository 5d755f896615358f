"""`--device`: one resolver (assay.devices) behind run.device, server.device and the `--device` of
every command that runs a trained model; a device that is not there is one error line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import assay.devices
from assay.config import load_config
from assay.devices import device_problem, resolve_device
from assay.errors import ConfigError
from assay.serve.config import ServeConfig
from assay.train.checkpoint import Checkpoint
from assay.train.config import TrainingConfig
from tests.conftest import one_error, run_cli, stream_tree, tiny_tree, write_toml

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


# -- the resolver -------------------------------------------------------------------------------
def test_device_names(monkeypatch):
    for good in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert device_problem(good) is None, good
    for bad in ("nonsense", "gpu", "CUDA", "cuda:", "cuda:x", "cpu:0", ""):
        assert device_problem(bad) == f"device {bad!r} is not one of auto, cpu, cuda, cuda:N or mps"
        with pytest.raises(ConfigError, match="is not one of auto, cpu, cuda, cuda:N or mps"):
            resolve_device(bad)


def test_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == resolve_device("cpu") == torch.device("cpu")
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(
            ConfigError, match=rf"^device '{spec}': this torch (sees no CUDA GPU here|was built without CUDA)"
        ):
            resolve_device(spec)
    with pytest.raises(ConfigError, match="^device 'mps': torch sees no Apple"):
        resolve_device("mps")
    assert resolve_device(torch.device("cpu", 0)) == torch.device("cpu", 0)  # a device passes through


def test_with_two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)  # torchrun's local rank
    assert resolve_device("cuda:1", local_rank=0) == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"device 'cuda:2': torch sees 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_device_keys_of_the_configs_are_checked_with_them():
    assert load_config(TrainingConfig, None, ["run.device=cuda:1"]).run.device == "cuda:1"
    assert load_config(ServeConfig, None, ["server.device=mps"]).server.device == "mps"
    with pytest.raises(ConfigError, match="run.device: device 'gpu' is not one of"):
        load_config(TrainingConfig, None, ["run.device=gpu"])
    with pytest.raises(ConfigError, match="server.device: device 'gpu' is not one of"):
        load_config(ServeConfig, None, ["server.device=gpu"])


# -- the commands -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def commands(tmp_path_factory, tiny_lm, judges, tiny_stream) -> dict[str, list[str]]:
    """Every command that runs a trained model, cheap arguments, without --device."""
    root = tmp_path_factory.mktemp("devices")
    produce = write_toml(stream_tree(root / "unused", root / "unused-stream", tiny_lm), root / "produce.toml")
    return {
        "generate": ["generate", str(tiny_lm), "--length", "8", "--steps", "2"],
        "eval": ["eval", str(tiny_lm), "--blocks", "2", "--elbo-points", "1"],
        "score": ["score", str(judges), "O Romeo, Romeo!"],
        "serve": ["serve", "--judge", str(judges), "--port", "0"],  # refused before it listens
        "data produce": ["data", "produce", "-c", str(produce), "-o", str(root / "stream"), "--shards", "1"],
    }


@NO_CUDA
@pytest.mark.parametrize("command", ["generate", "eval", "score", "serve", "data produce"])
def test_a_missing_gpu_is_one_error_line_and_writes_nothing(command, commands, capsys):
    line = one_error(*run_cli(capsys, *commands[command], "--device", "cuda")[::2])
    assert line.startswith("error: device 'cuda': this torch"), line
    produce = commands["data produce"]
    assert not Path(produce[produce.index("-o") + 1]).exists()


@pytest.mark.parametrize("command", ["generate", "eval", "score", "serve", "data produce"])
def test_a_name_that_is_no_device_is_one_error_line(command, commands, capsys):
    line = one_error(*run_cli(capsys, *commands[command], "--device", "nonsense")[::2])
    assert "device 'nonsense' is not one of auto, cpu, cuda, cuda:N or mps" in line, line


@pytest.mark.parametrize("command", ["generate", "eval", "score", "data produce"])
def test_the_device_reaches_the_model(command, commands, capsys, monkeypatch, tmp_path):
    """`--device cuda` on a pretend GPU (the CPU as `cpu:0`, which torch keeps apart from `cpu`):
    every model the command builds is built there."""
    real = assay.devices.resolve_device

    def pretend(spec="auto", local_rank=0):
        return torch.device("cpu", 0) if spec == "cuda" else real(spec, local_rank)

    monkeypatch.setattr(assay.devices, "resolve_device", pretend)
    built, build = [], Checkpoint.build_model

    def spy(self, device="cpu"):
        built.append(device)
        return build(self, device)

    monkeypatch.setattr(Checkpoint, "build_model", spy)
    args = list(commands[command])
    if command == "data produce":
        args[args.index("-o") + 1] = str(tmp_path / "stream")
    code, _, err = run_cli(capsys, *args, "--device", "cuda")
    assert code == 0, err
    assert built and set(built) == {torch.device("cpu", 0)}, built


def test_serve_loads_its_models_on_the_device(judges, tiny_lm, monkeypatch):
    from assay.serve.models import load_models

    loaded = load_models(judges, tiny_lm, torch.device("cpu", 0))
    assert loaded.judge.device == torch.device("cpu", 0)
    assert {next(m.parameters()).device.type for m in (loaded.lm.model, loaded.judge.scorer[1])} == {"cpu"}


def test_device_cpu_works(commands, capsys):
    code, out, err = run_cli(capsys, *commands["generate"], "--device", "cpu")
    assert code == 0 and len(out.rstrip("\n")) == 8, err
    code, out, err = run_cli(capsys, *commands["score"], "--device", "cpu", "--json")
    assert code == 0 and '"score"' in out, err


def test_the_train_config_device_is_checked_before_training(tmp_path, capsys):
    config = write_toml(tiny_tree(tmp_path / "run"), tmp_path / "c.toml")
    line = one_error(*run_cli(capsys, "train", "-c", config, "--set", "run.device=tpu")[::2])
    assert "run.device: device 'tpu' is not one of" in line
    assert not (tmp_path / "run").exists()
