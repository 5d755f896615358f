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
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from assay.errors import ConfigError
from assay.llm.backends import Backend, make_backend
from assay.llm.cache import ResponseCache, cache_key, canonical_json
from assay.llm.limits import TokenBucket, concurrency_limit
from assay.llm.retry import Backoff, with_retries
from assay.llm.settings import LLMSettings, backend_kind, loop_guards, read_env_file, resolve_api_key
from assay.llm.structured import (
    NATIVE_MODE,
    STRUCTURED_MODES,
    StructuredResult,
    Validator,
    json_schema_for,
    mentions_structured,
    parse_structured,
    probe_request,
    repair_message,
)
from assay.llm.types import ChatRequest, ChatResponse, LLMError, known_secrets, redact
from assay.llm.usage import UsageTracker

T = TypeVar("T")
log = logging.getLogger(__name__)

ADAPTIVE_KINDS = ("openai", "litellm")  # where `structured = auto` looks for the mode an endpoint takes


class _LoopState:
    """What belongs to one event loop: the backend, the in-flight limit, calls being made."""

    def __init__(self, backend: Backend, max_concurrency: int):
        self.backend = backend
        self.semaphore = concurrency_limit(max_concurrency)
        self.pending: dict[str, asyncio.Future] = {}
        self.probes: dict[str, asyncio.Lock] = {}  # model -> held while `auto` looks for its mode
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
        if s.structured not in ("auto", "prompt") and self.kind in ("local", "anthropic"):
            raise ConfigError(
                f"llm.structured={s.structured} is for OpenAI-compatible endpoints and LiteLLM; "
                f"{s.model} takes auto ({NATIVE_MODE[self.kind]}) or prompt"
            )
        self._modes: dict[str, str] = {}  # model -> the structured mode `auto` found

    # ---- the call ----------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One answer, from the cache or the backend. Raises LLMError when the call fails for good."""
        started = time.perf_counter()
        if self._closed:
            raise LLMError("the LLM client is closed")
        if not request.model:
            request = request.replace(model=self.settings.model)
        setting = self.settings.structured
        if self.kind == "local":
            guided = request.json_schema is not None and setting != "prompt" and request.structured != "prompt"
            penalty, n = loop_guards(self.settings, guided=guided)
            extra = {"repetition_penalty": penalty, "no_repeat_ngram_size": n} if penalty != 1.0 or n else {}
            extra |= self._runtime_extra(guided)
            if extra:
                request = request.replace(extra={**extra, **request.extra})  # (so the cache key holds them)
        if request.json_schema is None or request.structured is not None:
            return await self._complete(request, started)
        if setting == "auto" and self.kind in ADAPTIVE_KINDS:
            return await self._complete_auto(request, started)
        try:
            return await self._complete(self._in_mode(request, setting), started)
        except LLMError as exc:
            if setting == "auto" or not (exc.kind == "validation" and mentions_structured(str(exc))):
                raise
            raise LLMError(
                str(exc),
                kind=exc.kind,
                fix=f"this endpoint rejects llm.structured={setting}; set llm.structured=auto "
                f"(`assay llm check` lists the modes it takes)",
            ) from None

    async def list_models(self) -> list[str]:
        """The model ids an OpenAI-compatible endpoint lists (GET {api_base}/models)."""
        from assay.llm.backends.openai_compat import list_models

        return await list_models(self.settings.api_base, self._api_key, self.settings.timeout_s)

    def _runtime_extra(self, guided: bool) -> dict[str, str]:
        """The cache-only extra that sends a local request to llama.cpp ({} for transformers: its answers
        differ, so the cache keys on it); the runtime is assay.llm.local.runtime_for's."""
        from assay.llm.local import RUNTIME_KEY, runtime_for

        runtime = runtime_for(self.settings.model.split("/", 1)[1], self.settings.local_backend, guided)
        return {RUNTIME_KEY: runtime} if runtime == "llamacpp" else {}

    # ---- structured-output modes -------------------------------------------------------------
    def _in_mode(self, request: ChatRequest, mode: str) -> ChatRequest:
        """`request` sent in structured mode `mode` ("auto" or the backend's own: as it is)."""
        if mode in ("auto", NATIVE_MODE[self.kind]):
            return request
        return request.replace(structured=mode)

    def _endpoint(self, model: str) -> str:
        return canonical_json([self.kind, self.settings.api_base, model])

    def known_mode(self, model: str | None = None) -> str | None:
        """The structured mode requests for `model` (default: the configured one) are sent in: the
        setting, the backend's own way for `auto` on the local model and Anthropic, or what `auto`
        found (None until the first request with a schema, or `resolve_structured_mode`)."""
        model = model or self.settings.model
        setting = self.settings.structured
        if setting != "auto":
            return setting
        if self.kind not in ADAPTIVE_KINDS:
            return NATIVE_MODE[self.kind]
        mode = self._modes.get(model)
        if mode is None and self.cache is not None:
            mode = self.cache.get_mode(self._endpoint(model))
            if mode in STRUCTURED_MODES:
                self._modes[model] = mode
            else:
                mode = None
        return mode

    async def resolve_structured_mode(self, model: str | None = None) -> str:
        """The structured mode for `model`, probing the endpoint with one tiny request if `auto` has
        not found it yet (a pipeline step does this before its rows, to report the mode up front)."""
        mode = self.known_mode(model)
        if mode is None:
            await self.complete(probe_request(model or self.settings.model))
            mode = self.known_mode(model)
        return mode or NATIVE_MODE[self.kind]

    async def _complete_auto(self, request: ChatRequest, started: float) -> ChatResponse:
        """`auto`: send in the mode found for this endpoint; the first request (one at a time per
        model) tries the modes strongest first and keeps the first one the endpoint does not reject."""
        mode = self.known_mode(request.model)
        if mode is None:
            state = self._states.get(asyncio.get_running_loop()) or await self._new_state()
            async with state.probes.setdefault(request.model, asyncio.Lock()):
                mode = self.known_mode(request.model)
                if mode is None:
                    return await self._try_modes(request, STRUCTURED_MODES, started)
        return await self._try_modes(request, STRUCTURED_MODES[STRUCTURED_MODES.index(mode) :], started)

    async def _try_modes(self, request: ChatRequest, modes: tuple[str, ...], started: float) -> ChatResponse:
        """The answer in the first of `modes` that the endpoint does not reject as a request shape: a
        validation error that names the structured output (a row-specific rejection, such as a prompt
        too long for the context, fails the request and leaves the mode as it is)."""
        for i, mode in enumerate(modes):
            try:
                response = await self._complete(self._in_mode(request, mode), started)
            except LLMError as exc:
                rejected = exc.kind == "validation" and mentions_structured(str(exc))
                if not rejected or i == len(modes) - 1:
                    raise
                log.info("%s: the endpoint rejects structured mode %s; trying %s", request.model, mode, modes[i + 1])
                continue
            if self._modes.get(request.model) != mode:
                self._modes[request.model] = mode
                if self.cache is not None:
                    self.cache.put_mode(self._endpoint(request.model), mode)
            return response
        raise AssertionError("unreachable: the last mode raises")

    async def _complete(self, request: ChatRequest, started: float) -> ChatResponse:
        """The answer to `request` as it is: cache, shared in-flight calls, the backend with retries."""
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
            raise exc.with_message(message) from None

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
