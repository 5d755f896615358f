"""Text generation from a language-model checkpoint (diffusion or autoregressive)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from assay.devices import resolve_device
from assay.errors import AssayError
from assay.generate.autoregressive import generate_causal
from assay.generate.diffusion import SAMPLERS, generate_diffusion, unmask
from assay.masking.strategies import MaskVocab

__all__ = ["DEFAULT_SAMPLER", "SAMPLERS", "generate_causal", "generate_diffusion", "generate_text", "unmask"]

DEFAULT_SAMPLER = "ancestral"  # chosen by benchmarks/generation.py (docs/generation.md)


def generate_text(
    ckpt,
    length: int = 500,
    steps: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    prompt: str = "",
    device: str | torch.device = "cpu",
    sampler: str = DEFAULT_SAMPLER,
    eta: float = 0.02,
    model=None,
    on_step: Callable[[int, int, list[int]], None] | None = None,
) -> dict[str, Any]:
    """Sample text from a checkpoint (`assay.train.checkpoint.Checkpoint`).

    device: where the model runs (`assay.devices`: cpu, cuda, auto, ...); a `model` given runs
        where it is.
    model: the checkpoint's model already built (`ckpt.build_model()`), to reuse it across calls.
    on_step: diffusion only, see `generate_diffusion`."""
    cfg = ckpt.config
    if cfg.model.mode != "language_model":
        raise AssayError(f"{ckpt.directory} is a {cfg.model.mode}; generation needs a language_model checkpoint")
    if length < 1 or steps < 1:
        raise AssayError("--length and --steps must be at least 1")
    if sampler not in SAMPLERS:
        raise AssayError(f"--sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    if not 0.0 <= eta <= 1.0:
        raise AssayError(f"--eta must be in [0, 1], not {eta}")
    tok = ckpt.tokenizer
    if model is not None:
        device = next(model.parameters()).device
    else:
        device = resolve_device(device)
        model = ckpt.build_model(device)
    gen = torch.Generator().manual_seed(seed)
    prompt_ids = tok.encode(prompt) if prompt else []
    if cfg.model.causal:
        start = prompt_ids or tok.encode("\n") or [0]
        ids = generate_causal(
            model, tok.special_ids, start, length, cfg.data.block_size, temperature, top_p, gen, device
        )
        ids = (prompt_ids + ids) if prompt_ids else ids
    else:
        vocab = MaskVocab.of(tok)
        new = generate_diffusion(
            model,
            vocab,
            length,
            steps,
            cfg.data.block_size,
            prompt_ids,
            temperature,
            top_p,
            gen,
            device,
            on_step=on_step,
            sampler=sampler,
            eta=eta,
        )
        ids = prompt_ids + new
    return {
        "text": tok.decode(ids),
        "tokens": len(ids),
        "objective": cfg.objective,
        "steps": None if cfg.model.causal else steps,
        "sampler": None if cfg.model.causal else sampler,
        "eta": eta if sampler == "remdm" and not cfg.model.causal else None,
        "temperature": temperature,
        "top_p": top_p,
        "seed": seed,
        "checkpoint": str(ckpt.directory),
    }
