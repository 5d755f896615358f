"""Backends: one async call each. Caching, retries, limits and accounting live in the client.

    class Backend(Protocol):
        name: str
        async def complete(self, request: ChatRequest) -> ChatResponse: ...
        async def aclose(self) -> None: ...

A backend raises `RetryableLLMError` for failures worth retrying (429, 5xx, timeouts, connection
errors) and `LLMError` for the rest. `make_backend` picks one from the model string:

    local/NAME         the local model, no network: each request on llama.cpp (LlamaCppBackend) or
                       transformers (LocalBackend), as settings.local_backend and the client say
    anthropic/NAME     the anthropic SDK (api_base: an Anthropic-compatible server)
    openai/NAME        the openai SDK (api_base: any OpenAI-compatible server); so is any model
                       when api_base is given; settings.transport="lean" swaps the SDK for
                       assay's minimal JSON-over-aiohttp client
    litellm/STRING     LiteLLM, explicitly (e.g. litellm/openai/NAME with an api_base)
    anything else      LiteLLM (gemini/..., openrouter/..., ...)

SDKs are imported when a backend is made, never at `import assay.llm`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from assay.llm.settings import LLMSettings, backend_kind, read_env_file, resolve_api_key
from assay.llm.types import ChatRequest, ChatResponse, LLMError

__all__ = ["Backend", "backend_kind", "make_backend"]

_UNSET = object()


@runtime_checkable
class Backend(Protocol):
    name: str

    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    async def aclose(self) -> None: ...


def make_backend(settings: LLMSettings, api_key=_UNSET, env: dict[str, str] | None = None) -> Backend:
    """The backend for `settings.model`. api_key: the resolved key (resolved here if not given);
    env: the env file's values (LiteLLM may find its provider's key there)."""
    kind = backend_kind(settings.model, settings.api_base)
    if kind == "local":
        try:
            from assay.llm.local import local_backend
        except ImportError as exc:
            raise LLMError(f"the local model backend is not available ({exc})") from None
        return local_backend(settings.model.split("/", 1)[1])
    if env is None:
        env = read_env_file(settings.env_file) if settings.env_file else {}
    if api_key is _UNSET:
        api_key = resolve_api_key(settings, env)
    limit = settings.max_concurrency
    if kind == "anthropic":
        from assay.llm.backends.anthropic import AnthropicBackend

        return AnthropicBackend(settings.api_base, api_key, settings.timeout_s, limit)
    if kind == "openai":
        from assay.llm.backends.openai_compat import LeanOpenAIBackend, OpenAIBackend

        cls = LeanOpenAIBackend if settings.transport == "lean" else OpenAIBackend
        return cls(settings.api_base, api_key, settings.timeout_s, limit)
    from assay.llm.backends.litellm import LiteLLMBackend

    return LiteLLMBackend(settings.api_base, api_key, settings.timeout_s, env)
