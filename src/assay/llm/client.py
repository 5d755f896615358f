"""`LLMClient`: the one way assay talks to a language model.

    client = LLMClient(LLMSettings(model="openai/gpt-4o-mini", cache=Path("runs/llm.sqlite")))
    answer = await client.complete(ChatRequest.prompt("Name a colour."))
    result = await client.complete_json(ChatRequest.prompt("..."), MyPydanticModel)
    client.complete_sync(...)                # the same from plain (non-async) code
    client.usage.summary()                   # requests, cache hits, retries, tokens, cost

Around every backend call, in this order: cache lookup -> concurrency slot -> [rate-limit token ->
attempt under a timeout -> backoff] until success or retries run out -> cost accounting -> cache
write. Identical requests in flight at the same time share one call.

Event loops: the backend (its HTTP sessions) and the concurrency semaphore belong to one event loop,
so the client keeps one set per loop it is used from; the sync wrappers run on a private loop in a
background thread, which works whether or not the caller has a loop running. The cache, the rate
limit and the usage totals are shared by all.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from assay.llm.backends import Backend, make_backend
from assay.llm.cache import ResponseCache, cache_key
from assay.llm.limits import TokenBucket, concurrency_limit
from assay.llm.retry import Backoff, with_retries
from assay.llm.settings import LLMSettings, backend_kind, loop_guards, read_env_file, resolve_api_key
from assay.llm.structured import StructuredResult, Validator, json_schema_for, parse_structured, repair_message
from assay.llm.types import ChatRequest, ChatResponse, LLMError, known_secrets, redact
from assay.llm.usage import UsageTracker

T = TypeVar("T")


class _LoopState:
    """What belongs to one event loop: the backend, the in-flight limit, calls being made."""

    def __init__(self, backend: Backend, max_concurrency: int):
        self.backend = backend
        self.semaphore = concurrency_limit(max_concurrency)
        self.pending: dict[str, asyncio.Future] = {}
        self.closed = False
        self.closer = None  # see _closer
        self.closer_started = False

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await self.backend.aclose()

    async def shutdown(self) -> None:
        """Close the backend and finish the closer generator (nothing left for the loop to finalise)."""
        if self.closer_started:
            await self.closer.aclose()  # runs its `finally`: self.aclose()
        await self.aclose()


async def _closer(state: _LoopState):
    """A parked async generator that closes `state` when its loop shuts down: asyncio.run() (and any
    loop owner calling loop.shutdown_asyncgens()) finalises live async generators before closing the
    loop, so a client used through asyncio.run() releases its HTTP sessions without an aclose()."""
    try:
        yield
    finally:
        await state.aclose()


class LLMClient:
    def __init__(self, settings: LLMSettings | None = None):
        self.settings = s = settings or LLMSettings()
        self.kind = backend_kind(s.model, s.api_base)
        env = read_env_file(s.env_file) if s.env_file and self.kind != "local" else {}
        self._env = env
        self._api_key = resolve_api_key(s, env)  # fails early, before any work, if a key is missing
        self.cache = ResponseCache(s.cache) if s.cache is not None else None
        self.usage = UsageTracker(s)
        self._bucket = TokenBucket(s.max_qps) if s.max_qps else None
        self._backoff = Backoff(s.backoff_start_s, s.backoff_cap_s, s.jitter)
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._states_lock = threading.Lock()
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self._sync_thread: threading.Thread | None = None
        self._closed = False

    # ---- the call ----------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One answer, from the cache or the backend. Raises LLMError when the call fails for good."""
        started = time.perf_counter()
        if self._closed:
            raise LLMError("the LLM client is closed")
        if not request.model:
            request = request.replace(model=self.settings.model)
        if self.kind == "local":
            penalty, n = loop_guards(self.settings, guided=request.json_schema is not None)
            if penalty != 1.0 or n:
                guards = {"repetition_penalty": penalty, "no_repeat_ngram_size": n}
                request = request.replace(extra={**guards, **request.extra})  # (so the cache key holds them)
        key = None
        if self.cache is not None:
            key = cache_key(request, self.kind, self.settings.api_base)
            hit = self.cache.get(key, latency_s=time.perf_counter() - started)
            if hit is not None:
                self.usage.record_hit(request.model)
                return hit
        state = self._states.get(asyncio.get_running_loop()) or await self._new_state()
        while key is not None and key in state.pending:  # the same request is in flight: share its answer
            response = await asyncio.shield(state.pending[key])
            if response is not None:  # (None: that call was cancelled; make our own)
                self.usage.record_hit(request.model)
                return response.replace(cached=True, cost_usd=0.0, latency_s=time.perf_counter() - started)
        if key is not None:
            future = state.pending[key] = asyncio.get_running_loop().create_future()
        try:
            async with state.semaphore:
                response = await self._call(state.backend, request)
            response = ChatResponse(  # (a constructor call is 3x cheaper than dataclasses.replace)
                text=response.text,
                model=response.model,
                usage=response.usage,
                cost_usd=self.usage.record_call(request.model, response.usage),
                cached=False,
                latency_s=time.perf_counter() - started,
                finish_reason=response.finish_reason,
            )
            if key is not None:
                self.cache.put(key, response)
                future.set_result(response)
            return response
        except Exception as exc:
            if key is not None:
                future.set_exception(exc)
                future.exception()  # marks it retrieved: nobody may be waiting
            raise
        finally:
            if key is not None:
                if not future.done():  # cancelled
                    future.set_result(None)
                state.pending.pop(key, None)

    async def _call(self, backend: Backend, request: ChatRequest) -> ChatResponse:
        def on_retry(attempt: int, wait: float, error: Exception) -> None:
            self.usage.record_retry()

        try:
            return await with_retries(
                lambda: backend.complete(request),
                max_retries=self.settings.max_retries,
                backoff=self._backoff,
                # a local generation runs in a worker thread, which a timeout cannot stop: a retry
                # would only queue a second generation behind it
                timeout_s=None if self.kind == "local" else self.settings.timeout_s,
                label=request.model,
                before_attempt=self._bucket.acquire if self._bucket is not None else None,
                on_retry=on_retry,
            )
        except LLMError as exc:
            self.usage.record_error()
            message = redact(str(exc), known_secrets(self._api_key, self._env))  # whichever key the SDK used
            if not message.startswith(request.model):
                message = f"{request.model}: {message}"
            raise LLMError(message) from None

    # ---- structured output ---------------------------------------------------------------------
    async def complete_json(
        self, request: ChatRequest, validator: Validator = None, repair_attempts: int | None = None
    ) -> StructuredResult:
        """An answer parsed as JSON and validated (pydantic model class, callable, or None = any JSON).

        The request carries the validator's JSON Schema unless it has one. A rejected answer starts a
        repair round: the conversation continues with the bad answer and a user message quoting the
        error. `result.error` is None on success; transport failures raise LLMError as in complete().
        """
        if request.json_schema is None:
            schema = json_schema_for(validator)
            if schema is not None:
                request = request.replace(json_schema=schema, schema_name=getattr(validator, "__name__", "response"))
        rounds = self.settings.repair_attempts if repair_attempts is None else repair_attempts
        attempts = 0
        while True:
            response = await self.complete(request)
            attempts += 1
            value, error = parse_structured(response.text, validator)
            if error is None or attempts > rounds:
                return StructuredResult(value, response, response.text, error, attempts)
            messages = [
                *request.messages,
                {"role": "assistant", "content": response.text},
                {"role": "user", "content": repair_message(error, request.json_schema)},
            ]
            request = request.replace(messages=messages)

    # ---- sync wrappers -------------------------------------------------------------------------
    def complete_sync(self, request: ChatRequest) -> ChatResponse:
        return self._run_sync(self.complete(request))

    def complete_json_sync(
        self, request: ChatRequest, validator: Validator = None, repair_attempts: int | None = None
    ) -> StructuredResult:
        return self._run_sync(self.complete_json(request, validator, repair_attempts))

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._sync_loop is None:
            with self._states_lock:
                if self._sync_loop is None:
                    loop = asyncio.new_event_loop()
                    thread = threading.Thread(target=loop.run_forever, name="llm-client-sync", daemon=True)
                    thread.start()
                    self._sync_loop, self._sync_thread = loop, thread
        return asyncio.run_coroutine_threadsafe(coro, self._sync_loop).result()

    # ---- lifecycle -------------------------------------------------------------------------------
    async def _new_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._states_lock:
            for old in [lp for lp in self._states if lp.is_closed()]:
                del self._states[old]  # the loop is gone; so is everything bound to it
            state = self._states.get(loop)
            if state is None:
                backend = make_backend(self.settings, api_key=self._api_key, env=self._env)
                state = self._states[loop] = _LoopState(backend, self.settings.max_concurrency)
                state.closer = _closer(state)  # the loop holds only a weak reference: keep one here
        if not state.closer_started:
            state.closer_started = True
            await state.closer.__anext__()
        return state

    async def aclose(self) -> None:
        """Close the backends (on their own loops), the sync loop and the cache."""
        current = asyncio.get_running_loop()
        self._closed = True
        with self._states_lock:
            states, self._states = dict(self._states), {}
        for loop, state in states.items():
            if loop is current:
                await state.shutdown()
            elif loop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(state.shutdown(), loop))
        self._stop_sync_loop()
        if self.cache is not None:
            self.cache.close()

    def close(self) -> None:
        """aclose() for sync code (not from inside a running event loop: use `await aclose()` there)."""
        self._closed = True
        with self._states_lock:
            states, self._states = dict(self._states), {}
        for loop, state in states.items():
            if loop is self._sync_loop and loop.is_running():
                asyncio.run_coroutine_threadsafe(state.shutdown(), loop).result(timeout=30)
            elif not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(state.shutdown())
        self._stop_sync_loop()
        if self.cache is not None:
            self.cache.close()

    def _stop_sync_loop(self) -> None:
        loop, thread = self._sync_loop, self._sync_thread
        if loop is None or thread is None:
            return
        self._sync_loop = self._sync_thread = None
        asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
