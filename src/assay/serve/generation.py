"""`/api/generate`: diffusion sampling from the served LM, whole or streamed step by step.

A stream is NDJSON, one event per line:

    {"event": "start", "length": 200, "steps": 32, "windows": 1, "objective": "diffusion", ...}
    {"event": "step", "window": 0, "step": 0, "steps": 32, "masked": 194, "tokens": ["T", null, ...]}
    ...
    {"event": "done", "text": "...", ...}            (the same object as the unstreamed answer)
    {"event": "error", "error": "..."}               (instead of done, if generation failed)

`tokens` holds every new token so far as text, `null` where it is still [MASK]. Generation runs
in the LM's own thread; a client that goes away stops it at the next step.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assay.generate import DEFAULT_SAMPLER, generate_text
from assay.generate.diffusion import window_sizes
from assay.serve.models import LanguageModel


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = ""
    length: int = Field(200, ge=1)
    steps: int = Field(32, ge=1)
    temperature: float = Field(1.0, ge=0, le=10)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = Field(0, ge=0, lt=2**63)
    sampler: Literal["confidence", "random", "ancestral", "remdm"] = DEFAULT_SAMPLER
    eta: float = Field(0.02, ge=0, le=1)  # remdm's re-masking cap
    stream: bool = False


class _Stopped(Exception):
    """The client went away: stop generating."""


class Pieces:
    """Token id -> its text, decoded once (special tokens and [MASK] -> None)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special = set(tokenizer.special_ids)
        self._cache: dict[int, str] = {}

    def __call__(self, ids: list[int]) -> list[str | None]:
        out = []
        for i in ids:
            if i in self.special:
                out.append(None)
                continue
            piece = self._cache.get(i)
            if piece is None:
                piece = self._cache[i] = self.tokenizer.decode([i])
            out.append(piece)
        return out


def run(lm: LanguageModel, req: GenerateRequest, on_step=None) -> dict[str, Any]:
    """One generation (blocking; call it in the LM's thread)."""
    return generate_text(
        lm.ckpt,
        req.length,
        req.steps,
        req.temperature,
        req.top_p,
        req.seed,
        req.prompt,
        sampler=req.sampler,
        eta=req.eta,
        model=lm.model,
        on_step=on_step,
    )


def windows(lm: LanguageModel, req: GenerateRequest) -> int:
    """How many windows a generation of `req` takes (1 for a causal LM)."""
    if lm.ckpt.config.model.causal:
        return 1
    prompt = len(lm.ckpt.tokenizer.encode(req.prompt)) if req.prompt else 0
    return len(window_sizes(prompt, req.length, lm.ckpt.config.data.block_size))


async def stream(lm: LanguageModel, req: GenerateRequest, executor: ThreadPoolExecutor) -> AsyncIterator[bytes]:
    """NDJSON events of one generation (see the module docstring)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    stopped = threading.Event()
    pieces = Pieces(lm.ckpt.tokenizer)
    mask_id = lm.ckpt.tokenizer.mask_id

    def on_step(window: int, step: int, ids: list[int]) -> None:
        if stopped.is_set():
            raise _Stopped
        event = {
            "event": "step",
            "window": window,
            "step": step,
            "steps": req.steps,
            "masked": sum(i == mask_id for i in ids),
            "tokens": pieces(ids),
        }
        loop.call_soon_threadsafe(queue.put_nowait, event)

    def work() -> None:
        try:
            event = {"event": "done"} | run(lm, req, on_step)
        except _Stopped:
            event = None
        except Exception as exc:  # reported to the client, not raised into a finished response
            event = {"event": "error", "error": " ".join(str(exc).split()) or type(exc).__name__}
        loop.call_soon_threadsafe(queue.put_nowait, event)

    cfg = lm.ckpt.config
    yield _line(
        {
            "event": "start",
            "length": req.length,
            "steps": None if cfg.model.causal else req.steps,
            "windows": windows(lm, req),
            "objective": cfg.objective,
            "prompt": req.prompt,
        }
    )
    job = loop.run_in_executor(executor, work)
    try:
        while True:
            event = await queue.get()
            if event is None:
                break
            yield _line(event)
            if event["event"] in ("done", "error"):
                break
    finally:
        stopped.set()  # a client that left stops the generation at its next step
        await asyncio.shield(job)


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
