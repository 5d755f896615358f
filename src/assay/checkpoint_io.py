"""Reading and writing checkpoint directories: tensors as safetensors, everything else as JSON.

Every checkpoint of assay (a training run's, the LoRA fine-tune's) is a directory built from these
pieces and swapped into place atomically (`assay.io.write_directory` / `replace_directory`):

    save_tree / load_tree            a dict with tensors anywhere inside -> stem.safetensors + stem.json
    save_optimizer / load_optimizer  any torch optimizer's state -> optimizer.safetensors + optimizer.json
    resolve_checkpoint               a run folder's best/ or last/ (or a checkpoint folder itself)

Only safetensors and JSON are read back: loading a checkpoint never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from assay.errors import CheckpointError
from assay.io import atomic_write_json


def save_optimizer(directory: Path, optimizer: torch.optim.Optimizer) -> None:
    """AdamW (or any torch optimizer) state: tensors to optimizer.safetensors, the rest to optimizer.json."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, slots in sd["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    save_file(tensors, str(directory / "optimizer.safetensors"))
    atomic_write_json(directory / "optimizer.json", {"param_groups": sd["param_groups"], "scalars": scalars})


def load_optimizer(directory: Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore what `save_optimizer` wrote into `optimizer` (built over the same parameters)."""
    try:
        meta = json.loads((directory / "optimizer.json").read_text(encoding="utf-8"))
        tensors = load_file(str(directory / "optimizer.safetensors"))
    except (OSError, json.JSONDecodeError, SafetensorError) as exc:
        raise CheckpointError(f"{directory}: optimizer state missing or corrupt ({first_line(exc)})") from None
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{directory}: optimizer state does not fit the model ({exc})") from None


def save_tree(stem: Path, tree: dict[str, Any]) -> None:
    """A dict with tensors anywhere inside: tensors to `stem.safetensors`, the rest to `stem.json`."""
    tensors: dict[str, torch.Tensor] = {}

    def strip(node, path):
        if torch.is_tensor(node):
            key = ".".join(path)
            tensors[key] = node.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(node, dict):
            return {k: strip(v, [*path, str(k)]) for k, v in node.items()}
        return node

    skeleton = strip(tree, [])
    save_file(tensors, str(stem.with_suffix(".safetensors")))
    atomic_write_json(stem.with_suffix(".json"), skeleton)


def load_tree(stem: Path) -> dict[str, Any]:
    skeleton = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    tensors = load_file(str(stem.with_suffix(".safetensors")))

    def fill(node):
        if isinstance(node, dict):
            if set(node) == {"__tensor__"}:
                return tensors[node["__tensor__"]]
            return {k: fill(v) for k, v in node.items()}
        return node

    return fill(skeleton)


def resolve_checkpoint(path: str | Path, prefer: str = "best") -> Path:
    """A checkpoint directory from a run directory (its `best/` or `last/`) or a checkpoint path."""
    path = Path(path)
    if (path / "model.safetensors").exists():
        return path
    if prefer not in ("best", "last"):
        raise CheckpointError(f"no checkpoint called {prefer!r}: a run has best/ and last/")
    other = "last" if prefer == "best" else "best"
    # <name>.old: the intact copy a save killed between the two renames of its swap leaves behind,
    # which is newer than the other checkpoint (see assay.io.replace_directory)
    for name in (prefer, f"{prefer}.old", other, f"{other}.old"):
        if (path / name / "model.safetensors").exists():
            return path / name
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    raise CheckpointError(f"{path} holds no checkpoint (no model.safetensors in it, its best/ or its last/)")


def run_folder(path: str | Path) -> Path:
    """The run a path names: the run folder itself, or the run holding a checkpoint folder given
    directly (RUN/last, RUN/best, RUN/last.old)."""
    path = Path(path)
    if path.name in ("best", "last", "best.old", "last.old") and (path / "model.safetensors").exists():
        return path.parent
    return path


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
