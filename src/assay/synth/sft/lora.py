"""The base model, its LoRA wrapper (peft), adapters on disk and the merge into a plain HF model.

    adapter directory     adapter_model.safetensors + adapter_config.json (peft's format) and
                          sft.json (the base model spec and directory it was trained on)
    merged directory      model.safetensors + config.json + tokenizer: an ordinary HF model that
                          `local/PATH` (assay.llm.local) loads

Loading an adapter reads its config JSON and its safetensors and nothing else (peft's own
`from_pretrained` would fall back to a pickled .bin), and the base model is loaded in fp32.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

# huggingface_hub reads these when first imported: training never touches the network either
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from assay.errors import AssayError, CheckpointError  # noqa: E402

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
SFT_META = "sft.json"


def base_directory(spec: str) -> Path:
    """The HF directory a base-model spec names: `local/smollm2` (the dequantised copy of the
    shipped GGUF, written on first use) or `local/PATH`."""
    from assay.llm import local

    if not spec.startswith("local/"):
        raise AssayError(f"base model {spec!r}: use local/smollm2 or local/PATH (an HF model directory)")
    # (the dequantised copy of the GGUF, written on first use, without keeping load_model's shared copy)
    return local.hf_directory(spec.removeprefix("local/"))


def load_base(spec: str):
    """(model, tokenizer, directory): a fresh fp32 copy of the base model, in train mode."""
    from assay.llm.local import load_hf_directory

    directory = base_directory(spec)
    model, tokenizer = load_hf_directory(directory)
    model.config.use_cache = False  # training: no KV cache
    return model.train(), tokenizer, directory


def lora_config(r: int, alpha: float, dropout: float, target_modules: list[str]):
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def wrap(model, r: int, alpha: float, dropout: float, target_modules: list[str]):
    """`model` with LoRA adapters on `target_modules` (every other weight frozen): a PeftModel."""
    from peft import get_peft_model

    missing = [m for m in target_modules if not any(name.endswith(m) for name, _ in model.named_modules())]
    if missing:
        raise AssayError(f"lora.target_modules: the base model has no module named {', '.join(missing)}")
    with warnings.catch_warnings():  # peft asks transformers 5 for `is_gradient_checkpointing` (deprecated)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lora_config(r, alpha, dropout, target_modules))


def enable_gradient_checkpointing(peft_model) -> None:
    """Recompute each decoder layer's activations in backward (train mode only). Non-reentrant:
    works although the frozen embeddings' outputs need no grad, and it restores the RNG for the
    recomputation, so dropout masks -- and an exact resume -- are unchanged."""
    base = peft_model.get_base_model()
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5: the new name
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def trainable_parameters(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


def adapter_state(model) -> dict[str, Any]:
    """The adapter's tensors under peft's saved names (CPU copies, contiguous)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().clone().contiguous() for k, v in get_peft_model_state_dict(model).items()}


def save_adapter(model, directory: str | Path, meta: dict[str, Any]) -> None:
    """Write adapter weights (safetensors) + adapter_config.json + sft.json into `directory`
    (the caller makes it atomic: it writes into a temporary directory)."""
    from safetensors.torch import save_file

    from assay.io import atomic_write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state(model), str(directory / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    model.peft_config["default"].save_pretrained(str(directory))
    atomic_write_json(directory / SFT_META, meta)


def find_adapter(path: str | Path) -> Path:
    """An adapter directory, or a run/checkpoint folder holding one (`adapter/`)."""
    path = Path(path)
    for candidate in (path, path / "adapter", path / "checkpoint" / "adapter"):
        if (candidate / ADAPTER_CONFIG).is_file() and (candidate / ADAPTER_WEIGHTS).is_file():
            return candidate
    if not path.exists():
        raise CheckpointError(f"adapter not found: {path}")
    raise CheckpointError(f"{path} holds no LoRA adapter ({ADAPTER_CONFIG} + {ADAPTER_WEIGHTS})")


def load_adapter_weights(model, directory: str | Path) -> None:
    """Load saved adapter tensors into a PeftModel built with the same LoRA config."""
    from peft import set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(Path(directory) / ADAPTER_WEIGHTS))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{directory}: cannot read {ADAPTER_WEIGHTS} ({str(exc).splitlines()[0]})") from None
    result = set_peft_model_state_dict(model, tensors)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    missing = [k for k in (getattr(result, "missing_keys", []) or []) if "lora_" in k]
    if unexpected or missing:
        raise CheckpointError(
            f"{directory}: adapter does not fit the model (unexpected {unexpected[:2]}, missing {missing[:2]})"
        )


def load_adapter(path: str | Path, base: str | None = None):
    """(PeftModel in eval mode, tokenizer, adapter directory) from a saved adapter; `base` overrides
    the base-model spec recorded in its sft.json."""
    directory = find_adapter(path)  # before importing peft (seconds): a wrong path fails at once
    from peft import LoraConfig, get_peft_model

    try:
        meta = json.loads((directory / SFT_META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        meta = {}
    spec = base or meta.get("base")
    if not spec:
        raise CheckpointError(f"{directory}: no base model recorded in {SFT_META}; pass the base model")
    model, tokenizer, _ = load_base(spec)
    try:
        config = LoraConfig.from_pretrained(str(directory))
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{directory}: bad {ADAPTER_CONFIG} ({exc})") from None
    config.inference_mode = False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    load_adapter_weights(peft_model, directory)
    return peft_model.eval(), tokenizer, directory


def merge(peft_model, tokenizer, out_dir: str | Path) -> Path:
    """Fold the adapter into the base weights and write a standalone HF directory (safetensors +
    tokenizer), atomically. `peft_model` is consumed (its layers are replaced by plain ones)."""
    from assay.io import write_directory
    from assay.llm.local import quiet_transformers

    merged = peft_model.merge_and_unload()
    merged.config.use_cache = True  # inference default again

    def write(tmp: Path) -> None:
        with quiet_transformers():
            merged.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)

    write_directory(out_dir, write)
    return Path(out_dir)


def export(adapter_path: str | Path, out_dir: str | Path, base: str | None = None) -> dict[str, Any]:
    """`assay synth export-sft`: adapter (+ its base) -> merged standalone model directory."""
    peft_model, tokenizer, directory = load_adapter(adapter_path, base)
    merge(peft_model, tokenizer, out_dir)
    return {"adapter": str(directory), "merged": str(out_dir)}
