"""`/api/generate`: diffusion sampling from the served LM, whole or streamed step by step.

A stream is NDJSON, one event per line:

    {"event": "start", "length": 200, "steps": 32, "windows": 1, "objective": "diffusion", ...}
    {"event": "step", "window": 0, "step": 0, "steps": 32, "masked": 194, "tokens": ["T", null, ...]}
    ...
    {"event": "done", "text": "...", ...}            (the same object as the unstreamed answer)
    {"event": "error", "error": "..."}               (instead of done, if generation failed)

`tokens` holds every new token so far as text, `null` where it is still [MASK]. Generation runs
in the LM's own thread; a client that goes away, streamed or not, stops it at the next step.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assay.generate import DEFAULT_SAMPLER, generate_text
from assay.generate.diffusion import window_sizes
from assay.serve.batcher import Overloaded
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


class Generations:
    """The LM's work. Generations run one at a time in the LM's thread; at most `limit` are admitted
    at once (running or waiting for it), more is `Overloaded` (503). Each one stops at its next
    denoising step once its client has gone. The counters are for /api/models."""

    def __init__(self, lm: LanguageModel, executor: ThreadPoolExecutor, limit: int):
        self.lm = lm
        self.executor = executor
        self.limit = limit
        self.active = 0  # admitted and not finished: running or waiting for the LM
        self.steps = 0  # denoising steps run, all generations together (written by the LM's thread only)
        self.finished = 0  # ran to the end (or to an error)
        self.abandoned = 0  # stopped early, or never started, because the client left
        self.refused = 0  # refused with Overloaded

    def admit(self, req: GenerateRequest) -> Generation:
        if self.active >= self.limit:
            self.refused += 1
            raise Overloaded(f"{self.active} generations are running or waiting (the limit is {self.limit}): try again")
        self.active += 1
        return Generation(self, req)

    def stats(self) -> dict[str, int]:
        return {
            "generations_active": self.active,
            "generations_finished": self.finished,
            "generations_abandoned": self.abandoned,
            "generations_refused": self.refused,
            "generation_steps": self.steps,
        }


class Generation:
    """One admitted generation: `start()` it in the LM's thread, `stop()` it when its client has
    gone or its response is over (idempotent; it leaves `active` once, when the LM is done with it)."""

    def __init__(self, owner: Generations, req: GenerateRequest):
        self.owner = owner
        self.req = req
        self.stopped = threading.Event()
        self.job: asyncio.Future | None = None
        self._released = False

    def start(self, on_step=None) -> asyncio.Future:
        """The running generation: its result is the answer, or _Stopped."""

        def step(window: int, step: int, ids: list[int]) -> None:
            if self.stopped.is_set():
                raise _Stopped
            self.owner.steps += 1
            if on_step is not None:
                on_step(window, step, ids)

        def work() -> dict[str, Any]:
            if self.stopped.is_set():  # the client left while it waited for the LM
                raise _Stopped
            return run(self.owner.lm, self.req, step)

        self.job = asyncio.get_running_loop().run_in_executor(self.owner.executor, work)
        self.job.add_done_callback(self._done)
        return self.job

    def stop(self) -> None:
        self.stopped.set()
        if self.job is None:
            self._release(finished=False)

    def _done(self, job: asyncio.Future) -> None:
        self._release(finished=not (job.cancelled() or isinstance(job.exception(), _Stopped)))

    def _release(self, finished: bool) -> None:
        if self._released:
            return
        self._released = True
        self.owner.active -= 1
        if finished:
            self.owner.finished += 1
        else:
            self.owner.abandoned += 1

    async def answer(self, disconnected: Awaitable[None]) -> dict[str, Any] | None:
        """The unstreamed answer, or None if the client left first (the generation is then stopped
        at its next step)."""
        job = self.start()
        gone = asyncio.ensure_future(disconnected)
        try:
            await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not job.done():
                self.stop()
        if not job.done():
            return None
        return job.result()

    async def stream(self) -> AsyncIterator[bytes]:
        """NDJSON events (see the module docstring)."""
        lm, req = self.owner.lm, self.req
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        pieces = Pieces(lm.ckpt.tokenizer)
        mask_id = lm.ckpt.tokenizer.mask_id

        def on_step(window: int, step: int, ids: list[int]) -> None:
            event = {
                "event": "step",
                "window": window,
                "step": step,
                "steps": req.steps,
                "masked": sum(i == mask_id for i in ids),
                "tokens": pieces(ids),
            }
            loop.call_soon_threadsafe(queue.put_nowait, event)

        cfg = lm.ckpt.config
        try:
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
            job = self.start(on_step)
            # the steps are queued (call_soon_threadsafe) before the job's end is: they come first
            job.add_done_callback(lambda _: queue.put_nowait(None))
            while (event := await queue.get()) is not None:
                yield _line(event)
            try:
                last = {"event": "done"} | job.result()
            except _Stopped:
                return
            except Exception as exc:  # reported to the client, not raised into a started response
                last = {"event": "error", "error": " ".join(str(exc).split()) or type(exc).__name__}
            yield _line(last)
        finally:
            self.stop()  # a client that left stops the generation at its next step


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


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
