"""Any LiteLLM model string (gemini/..., openrouter/..., bedrock/..., litellm/openai/NAME, ...).

LiteLLM's own retries are off (the client retries) and parameters a provider does not take are
dropped rather than refused. Its price table is the bundled copy (LITELLM_LOCAL_MODEL_COST_MAP):
nothing is fetched at run time. Without --api-key-env, LiteLLM reads its provider's variable
(GEMINI_API_KEY, ...) from the environment, or from the env file if the variable is there.

Which key LiteLLM used is not known here, so its errors and its loggers' records are scrubbed of every
key-like variable of the environment and of the env file (`types.known_secrets`), not only of ours.
"""

from __future__ import annotations

import logging
import os
import time

from assay.llm.backends.openai_compat import map_sdk_error, request_messages, response_format
from assay.llm.types import ChatRequest, ChatResponse, LLMError, RedactingFilter, Usage, known_secrets

LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
_log_filter = RedactingFilter()


def import_litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _log_filter not in logger.filters:
            logger.addFilter(_log_filter)
    return litellm


class LiteLLMBackend:
    name = "litellm"

    def __init__(self, api_base: str | None, api_key: str | None, timeout_s: float, env: dict[str, str]):
        self._litellm = import_litellm()
        self._api_base = api_base
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._env = env
        self._keys: dict[str, str | None] = {}  # model -> key found in the env file
        _log_filter.extra.update(known_secrets(api_key, env))

    def _key_for(self, model: str) -> str | None:
        if self._api_key is not None or not self._env:
            return self._api_key
        if model not in self._keys:
            try:
                missing = self._litellm.validate_environment(model=model).get("missing_keys") or []
            except Exception:  # an unknown provider: litellm.acompletion will say so
                missing = []
            self._keys[model] = next((self._env[name] for name in missing if self._env.get(name)), None)
        return self._keys[model]

    async def complete(self, request: ChatRequest) -> ChatResponse:
        model = request.model.removeprefix("litellm/")
        kwargs: dict = {
            "model": model,
            "messages": request_messages(request),
            "temperature": request.temperature,
            "timeout": self._timeout_s,
            "num_retries": 0,
            "max_retries": 0,
            "drop_params": True,
        }
        key = self._key_for(model)
        if key:
            kwargs["api_key"] = key
        if self._api_base:
            kwargs["api_base"] = self._api_base
            kwargs.setdefault("api_key", "not-needed")  # keyless local servers: LiteLLM insists on one
        for name in ("max_tokens", "top_p", "seed"):
            if getattr(request, name) is not None:
                kwargs[name] = getattr(request, name)
        fmt = response_format(request)
        if fmt is not None:
            kwargs["response_format"] = fmt
        kwargs.update(request.provider_extra())
        started = time.perf_counter()
        try:
            out = await self._litellm.acompletion(**kwargs)
        except Exception as exc:  # LiteLLM raises openai-style exceptions and a few of its own
            raise map_sdk_error(exc, known_secrets(key or self._api_key, self._env)) from None
        try:
            choice = out.choices[0]
            usage = getattr(out, "usage", None)
            return ChatResponse(
                text=choice.message.content or "",
                model=out.model or model,
                usage=Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else Usage(),
                latency_s=time.perf_counter() - started,
                finish_reason=choice.finish_reason,
            )
        except (AttributeError, IndexError, TypeError):
            raise LLMError(f"{request.model}: LiteLLM's answer is not a chat completion") from None

    async def aclose(self) -> None:
        return None
