"""A training run's checkpoint: a directory, written atomically (format: assay.checkpoint_io).

    model.safetensors        weights (tied tensors stored once)
    config.json              the full run config; the model is rebuilt from it, never guessed
    tokenizer/               the tokenizer (see assay.data.tokenizer)
    state.json               iteration, best validation loss, task state (data cursor, curriculum)
    optimizer.safetensors    AdamW moments; optimizer.json: its param groups
    training.safetensors     with train.ema_decay: the optimizer's own weights (model.safetensors
                             then holds their EMA, what every reader of the checkpoint uses)
    rank{r}.safetensors/json per-rank RNG states (torch, masking generator)

`load_checkpoint` is the one reader, used by train (resume, init_from), eval, generate, the judges,
serve and the experiments. The config is validated by the config class of the checkpoint's task,
found in the task table the caller passes (the core's objectives by default, see train/task.py).
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

from assay.checkpoint_io import (
    first_line,
    load_optimizer,
    load_tree,
    resolve_checkpoint,
    save_optimizer,
    save_tree,
)
from assay.config import to_dict, validate
from assay.data.tokenizer import Tokenizer, load_tokenizer
from assay.errors import AssayError, CheckpointError
from assay.io import atomic_write_json, is_disk_full, make_temp_directory, replace_directory
from assay.model import Transformer
from assay.train.config import TrainingConfig
from assay.train.lm_tasks import CORE_TASKS
from assay.train.task import Task, TaskTable, objective_of

FORMAT = 1
TRAINING_WEIGHTS = "training.safetensors"


class ObjectiveError(CheckpointError):
    """A checkpoint of an objective the caller's task table does not know."""

    def __init__(self, directory: Path, objective: str, mode: str, known: list[str]):
        self.objective, self.mode = objective, mode  # mode: the model's head
        super().__init__(f"{directory} is a {objective} run; this reads only {', '.join(known)} runs")


# -- writing ------------------------------------------------------------------------------------
def save_checkpoint(
    directory: str | Path,
    *,
    model: Transformer,
    weights: dict[str, torch.Tensor] | None = None,
    config: TrainingConfig,
    tokenizer: Tokenizer,
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    rank_state: dict[str, Any] | None = None,
    dist=None,
    training_weights: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write a checkpoint directory atomically. Under DDP every rank calls this (collectively):
    rank 0 writes the shared files, every rank its own RNG state. `weights`: the model's whole
    weights when `model` holds only shards of them (FSDP; rank 0's are written), else None.

    The files go into a fresh temporary folder, are fsynced, and the folder is swapped into place
    (`replace_directory`). If any rank fails to write (a full disk), the temporary folder is
    removed, the previous checkpoint stays as it was, and every rank raises one CheckpointError."""
    directory = Path(directory)
    is_main = dist is None or dist.is_main
    rank = 0 if dist is None else dist.rank
    tmp = make_temp_directory(directory) if is_main else None
    if dist is not None:
        tmp = Path(dist.broadcast_text(str(tmp) if tmp else None))
    error: BaseException | None = None
    try:
        if rank_state is not None:
            save_tree(tmp / f"rank{rank}", rank_state)
        if is_main:
            _save_weights(tmp / "model.safetensors", model, weights)
            atomic_write_json(tmp / "config.json", to_dict(config))
            tokenizer.save(tmp / "tokenizer")
            if optimizer is not None:
                save_optimizer(tmp, optimizer)
            if training_weights is not None:
                tensors = {k: v.detach().cpu().contiguous() for k, v in training_weights.items()}
                save_file(tensors, str(tmp / TRAINING_WEIGHTS), metadata={"format": f"assay-{FORMAT}"})
            world = 1 if dist is None else dist.world_size
            atomic_write_json(tmp / "state.json", {"format": FORMAT, "world_size": world} | state)
    except (OSError, SafetensorError) as exc:
        error = exc
    failed = error is not None if dist is None else dist.any(error is not None)
    if not failed and is_main:
        try:
            replace_directory(tmp, directory)
        except OSError as exc:
            error = exc
        failed = error is not None
    if failed:
        if is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        reason = ("disk full: " if error is not None and is_disk_full(error) else "") + (
            first_line(error) if error is not None else "another rank could not write its state"
        )
        raise CheckpointError(f"cannot write the checkpoint {directory} ({reason}); the previous one is kept")
    _barrier(dist)


def _save_weights(path: Path, model: Transformer, weights: dict[str, torch.Tensor] | None) -> None:
    """model.safetensors: the model's tensors, or the whole `weights` gathered from its shards, in
    the same layout: a tied tensor is stored once, under its first name in sorted order, and the
    metadata maps each other name to it (as safetensors' save_model does)."""
    metadata = {"format": f"assay-{FORMAT}"}
    if weights is None:
        save_model(model, str(path), metadata=metadata)
        return
    tied: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        tied.setdefault(id(param), []).append(name)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in weights.items()}
    for names in tied.values():
        kept, *others = sorted(names)
        for other in others:
            tensors.pop(other, None)
            metadata[other] = kept
    save_file(tensors, str(path), metadata=metadata)


def _barrier(dist) -> None:
    if dist is not None:
        dist.barrier()


# -- reading ------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    directory: Path
    config: TrainingConfig
    tokenizer: Tokenizer
    state: dict[str, Any]
    task: type[Task]  # the objective's task (its model class and evaluation)

    def build_model(self, device: str | torch.device = "cpu") -> Transformer:
        """The model rebuilt from the saved config, weights loaded, in eval mode."""
        model = self.task.build_model(self.config)
        try:
            missing, unexpected = load_model(model, str(self.directory / "model.safetensors"), strict=False)
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise CheckpointError(f"{self.directory}: cannot load model.safetensors ({first_line(exc)})") from None
        if missing or unexpected:
            raise CheckpointError(
                f"{self.directory}: weights do not match the saved config "
                f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
            )
        return model.to(device).eval()

    def load_training_weights(self, model: Transformer) -> bool:
        """Load the optimizer's own weights (saved beside EMA weights) into `model`; False if the
        checkpoint has none (its model.safetensors is what was trained)."""
        path = self.directory / TRAINING_WEIGHTS
        if not path.exists():
            return False
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{self.directory}: cannot load {TRAINING_WEIGHTS} ({first_line(exc)})") from None
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        expected = {name for name, _ in model.named_parameters()}
        if unexpected or expected - set(tensors):
            raise CheckpointError(f"{self.directory}: {TRAINING_WEIGHTS} does not match the model")
        return True

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        load_optimizer(self.directory, optimizer)

    def rank_state(self, rank: int) -> dict[str, Any]:
        stem = self.directory / f"rank{rank}"
        if not stem.with_suffix(".json").exists():
            world = self.state.get("world_size", 1)
            raise CheckpointError(f"{self.directory} holds no state for rank {rank} (it was written by {world} ranks)")
        try:
            return load_tree(stem)
        except (OSError, json.JSONDecodeError, SafetensorError, KeyError) as exc:
            raise CheckpointError(f"{self.directory}: rank {rank} state is corrupt ({first_line(exc)})") from None


def init_from_checkpoint(model: Transformer, path: str | Path, tokenizer: Tokenizer) -> dict[str, list[str]]:
    """Transfer learning: copy every tensor of a checkpoint (of any objective) whose name and shape
    match `model`; the two must share the tokenizer.

    Returns what was loaded, what is new (e.g. a classifier head the LM never had) and what was
    skipped because its shape differs (e.g. a head with another number of classes).
    """
    directory = resolve_checkpoint(path)
    try:
        theirs = load_tokenizer(directory / "tokenizer")
    except AssayError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    if theirs.fingerprint() != tokenizer.fingerprint():
        raise CheckpointError(f"model.init_from {directory} uses another tokenizer than this run's data")
    try:
        saved = load_file(str(directory / "model.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{directory}: cannot load model.safetensors ({first_line(exc)})") from None
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


def load_checkpoint(path: str | Path, prefer: str = "best", tasks: TaskTable = CORE_TASKS) -> Checkpoint:
    """The checkpoint at `path` (a checkpoint folder, or a run folder: its `prefer`red best/ or
    last/). `tasks` names the objectives the caller knows; another objective is a CheckpointError."""
    directory = resolve_checkpoint(path, prefer)
    try:
        raw_config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{directory} is incomplete ({Path(exc.filename).name} missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{directory} is corrupt (config.json or state.json is not valid JSON)") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise CheckpointError(f"{directory}: unknown checkpoint format {found!r}")
    if not isinstance(raw_config, dict):
        raise CheckpointError(f"{directory} is corrupt (config.json is not a JSON object)")
    raw_config = _upgrade(raw_config)
    objective = objective_of(raw_config, tasks)
    if objective not in tasks:
        mode = str((raw_config.get("model") or {}).get("mode", "language_model"))
        raise ObjectiveError(directory, objective, mode, list(tasks))
    task = tasks[objective]
    try:
        config = validate(task.config_class, raw_config)
        tokenizer = load_tokenizer(directory / "tokenizer")
    except AssayError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    saved_vocab = config.model.vocab_size
    if saved_vocab is not None and saved_vocab != tokenizer.vocab_size:
        raise CheckpointError(
            f"{directory}: its tokenizer has {tokenizer.vocab_size} tokens but the model's vocabulary is "
            f"{saved_vocab} (a tokenizer/ from another run?)"
        )
    return Checkpoint(directory, config, tokenizer, state, task)


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """Configs written by earlier versions of format 1: `model.aux_classes` (an auxiliary head that
    is now a task's own) was always saved, and is 0 unless a connective class head was trained."""
    model = raw.get("model")
    if isinstance(model, dict) and model.get("aux_classes") == 0:
        del model["aux_classes"]
    return raw
