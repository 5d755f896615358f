"""The one checkpoint format of assay: a directory, written atomically.

    model.safetensors        weights (tied tensors stored once)
    config.json              the full run config; the model is rebuilt from it, never guessed
    tokenizer/               the tokenizer (see assay.data.tokenizer)
    state.json               iteration, best validation loss, task state (data cursor, curriculum)
    optimizer.safetensors    AdamW moments; optimizer.json: its param groups
    rank{r}.safetensors/json per-rank RNG states (torch, masking generator)

Only safetensors and JSON are read back: loading a checkpoint never unpickles anything.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from assay.config import to_dict, validate
from assay.data.tokenizer import Tokenizer, load_tokenizer
from assay.errors import AssayError, CheckpointError
from assay.io import atomic_write_json, replace_directory
from assay.model import Transformer
from assay.train.config import TrainingConfig

FORMAT = 1


# -- writing ------------------------------------------------------------------------------------
def save_checkpoint(
    directory: str | Path,
    *,
    model: Transformer,
    config: TrainingConfig,
    tokenizer: Tokenizer,
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    rank_state: dict[str, Any] | None = None,
    dist=None,
) -> None:
    """Write a checkpoint directory atomically. Under DDP every rank calls this (collectively):
    rank 0 writes the shared files, every rank its own RNG state."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp")
    is_main = dist is None or dist.is_main
    rank = 0 if dist is None else dist.rank
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier(dist)
    if rank_state is not None:
        _save_tree(tmp / f"rank{rank}", rank_state)
    if is_main:
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": f"assay-{FORMAT}"})
        atomic_write_json(tmp / "config.json", to_dict(config))
        tokenizer.save(tmp / "tokenizer")
        if optimizer is not None:
            save_optimizer(tmp, optimizer)
        world = 1 if dist is None else dist.world_size
        atomic_write_json(tmp / "state.json", {"format": FORMAT, "world_size": world} | state)
    _barrier(dist)
    if is_main:
        replace_directory(tmp, directory)
    _barrier(dist)


def _barrier(dist) -> None:
    if dist is not None:
        dist.barrier()


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


def _save_tree(stem: Path, tree: dict[str, Any]) -> None:
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


def _load_tree(stem: Path) -> dict[str, Any]:
    skeleton = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    tensors = load_file(str(stem.with_suffix(".safetensors")))

    def fill(node):
        if isinstance(node, dict):
            if set(node) == {"__tensor__"}:
                return tensors[node["__tensor__"]]
            return {k: fill(v) for k, v in node.items()}
        return node

    return fill(skeleton)


# -- reading ------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    directory: Path
    config: TrainingConfig
    tokenizer: Tokenizer
    state: dict[str, Any]

    def build_model(self, device: str | torch.device = "cpu") -> Transformer:
        """The model rebuilt from the saved config, weights loaded, in eval mode."""
        model = Transformer(self.config.model)
        try:
            missing, unexpected = load_model(model, str(self.directory / "model.safetensors"), strict=False)
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise CheckpointError(f"{self.directory}: cannot load model.safetensors ({_first_line(exc)})") from None
        if missing or unexpected:
            raise CheckpointError(
                f"{self.directory}: weights do not match the saved config "
                f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
            )
        return model.to(device).eval()

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        load_optimizer(self.directory, optimizer)

    def rank_state(self, rank: int) -> dict[str, Any]:
        stem = self.directory / f"rank{rank}"
        if not stem.with_suffix(".json").exists():
            world = self.state.get("world_size", 1)
            raise CheckpointError(f"{self.directory} holds no state for rank {rank} (it was written by {world} ranks)")
        try:
            return _load_tree(stem)
        except (OSError, json.JSONDecodeError, SafetensorError, KeyError) as exc:
            raise CheckpointError(f"{self.directory}: rank {rank} state is corrupt ({_first_line(exc)})") from None


def load_optimizer(directory: Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore what `save_optimizer` wrote into `optimizer` (built over the same parameters)."""
    try:
        meta = json.loads((directory / "optimizer.json").read_text(encoding="utf-8"))
        tensors = load_file(str(directory / "optimizer.safetensors"))
    except (OSError, json.JSONDecodeError, SafetensorError) as exc:
        raise CheckpointError(f"{directory}: optimizer state missing or corrupt ({_first_line(exc)})") from None
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{directory}: optimizer state does not fit the model ({exc})") from None


def init_from_checkpoint(model: Transformer, path: str | Path, tokenizer: Tokenizer) -> dict[str, list[str]]:
    """Transfer learning: copy every tensor of a checkpoint whose name and shape match `model`.

    Returns what was loaded, what is new (e.g. a classifier head the LM never had) and what was
    skipped because its shape differs (e.g. a head with another number of classes).
    """
    ckpt = load_checkpoint(path)
    if ckpt.tokenizer.fingerprint() != tokenizer.fingerprint():
        raise CheckpointError(f"model.init_from {ckpt.directory} uses another tokenizer than this run's data")
    try:
        saved = load_file(str(ckpt.directory / "model.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{ckpt.directory}: cannot load model.safetensors ({_first_line(exc)})") from None
    own = model.state_dict()
    report: dict[str, list[str]] = {"loaded": [], "new": [], "skipped": []}
    with torch.no_grad():
        for name, tensor in saved.items():
            if name in own and own[name].shape == tensor.shape:
                own[name].copy_(tensor)
                report["loaded"].append(name)
            else:
                report["skipped"].append(name)
    report["new"] = [n for n in own if n not in saved]
    return {k: sorted(v) for k, v in report.items()}


def resolve_checkpoint(path: str | Path, prefer: str = "best") -> Path:
    """A checkpoint directory from a run directory (its `best/` or `last/`) or a checkpoint path."""
    path = Path(path)
    if (path / "model.safetensors").exists():
        return path
    order = [prefer, "last" if prefer == "best" else "best"]
    for name in order + [f"{n}.old" for n in order]:  # *.old: a crash in the middle of a swap
        if (path / name / "model.safetensors").exists():
            return path / name
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    raise CheckpointError(f"{path} holds no checkpoint (no model.safetensors in it, its best/ or its last/)")


def load_checkpoint(path: str | Path, prefer: str = "best") -> Checkpoint:
    directory = resolve_checkpoint(path, prefer)
    try:
        raw_config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{directory} is incomplete ({Path(exc.filename).name} missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{directory} is corrupt (config.json or state.json is not valid JSON)") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{directory}: unknown checkpoint format {state.get('format')!r}")
    try:
        config = validate(TrainingConfig, raw_config)
        tokenizer = load_tokenizer(directory / "tokenizer")
    except AssayError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    return Checkpoint(directory, config, tokenizer, state)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
