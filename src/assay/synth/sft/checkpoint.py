"""The resumable SFT checkpoint: a directory, written under a temporary name and renamed.

    adapter/                  the LoRA adapter (lora.save_adapter: safetensors + JSON)
    optimizer.safetensors     AdamW moments and step counts; optimizer.json: param groups, scalars
    rng.safetensors           torch's CPU (and CUDA) generator states; state.json: step, data cursor and order,
                              Python's `random` state, best validation loss

Only safetensors and JSON are read back: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from assay.checkpoint_io import load_optimizer, save_optimizer
from assay.errors import CheckpointError
from assay.io import atomic_write_json, write_directory
from assay.synth.sft.lora import load_adapter_weights, save_adapter

FORMAT = 1


def save(directory: str | Path, model, optimizer: torch.optim.Optimizer, state: dict[str, Any], meta: dict) -> None:
    """Write the checkpoint atomically (replacing an older one only once the new one is complete)."""

    def write(tmp: Path) -> None:
        save_adapter(model, tmp / "adapter", meta)
        save_optimizer(tmp, optimizer)
        rng = {"torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on the GPU draws from these
            rng |= {f"cuda_rng.{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())}
        save_file(rng, str(tmp / "rng.safetensors"))
        py_state = random.getstate()
        atomic_write_json(
            tmp / "state.json",
            {"format": FORMAT, **state, "python_rng": [py_state[0], list(py_state[1]), py_state[2]]},
        )

    write_directory(directory, write)


def intact(directory: str | Path) -> Path | None:
    """The checkpoint to resume from: `directory`, or `<directory>.old` when a save was killed
    between the two renames of its swap (see `assay.io.replace_directory`); None if neither holds one."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / "state.json").is_file():
            return candidate
    return None


def load(directory: str | Path, model, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore adapter weights, optimizer state and every RNG; returns state.json."""
    directory = Path(directory)
    try:
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{directory}: no readable state.json ({exc.__class__.__name__})") from None
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{directory}: checkpoint format {state.get('format')!r}, expected {FORMAT}")
    load_adapter_weights(model, directory / "adapter")
    load_optimizer(directory, optimizer)
    try:
        rng = load_file(str(directory / "rng.safetensors"))
        torch.set_rng_state(rng["torch_rng"])
    except (OSError, SafetensorError, KeyError) as exc:
        raise CheckpointError(f"{directory}: RNG state missing or corrupt ({exc.__class__.__name__})") from None
    cuda = [rng[f"cuda_rng.{i}"] for i in range(len(rng) - 1) if f"cuda_rng.{i}" in rng]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    return state
