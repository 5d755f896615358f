"""Shared fixtures: a private token cache per test session and tiny real-data configs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

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
