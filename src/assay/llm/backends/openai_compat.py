"""OpenAI-compatible endpoints (OpenAI itself, vLLM, llama.cpp, Ollama, OpenRouter, ...).

Two transports with the same behaviour: `OpenAIBackend` uses the openai SDK (over aiohttp, see
http.py) and `LeanOpenAIBackend` posts the JSON itself (no SDK objects per request: for very high
request rates against a local server).
"""

from __future__ import annotations

import json
import time
from typing import Any

from assay.llm.backends.http import close_quietly, http_client, new_session, proxy_for, status_error
from assay.llm.structured import PROMPTED_MODES, STRUCTURED_MODES, messages_with_schema, portable_schema
from assay.llm.types import ChatRequest, ChatResponse, LLMError, RetryableLLMError, Secrets, Usage, redact

OPENAI_BASE = "https://api.openai.com/v1"


def model_name(model: str) -> str:
    """The name the endpoint knows: without assay's "openai/" prefix."""
    return model.removeprefix("openai/")


def response_format(request: ChatRequest) -> dict[str, Any] | None:
    """The `response_format` of a request with a JSON Schema, in its structured mode (None: no
    response_format, or no schema)."""
    schema = request.json_schema
    mode = request.structured or "json_schema"
    if schema is None or mode == "prompt":
        return None
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": request.schema_name, "schema": schema, "strict": False}}
    if mode == "json_object_schema":  # (llama.cpp's shape; its grammar converter needs portable patterns)
        return {"type": "json_object", "schema": portable_schema(schema)}
    if mode == "json_object":
        return {"type": "json_object"}
    raise LLMError(f"unknown structured-output mode {mode!r}: use one of {', '.join(STRUCTURED_MODES)}")


def request_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The messages sent: with the schema in the prompt for the modes that carry it there."""
    if request.json_schema is not None and request.structured in PROMPTED_MODES:
        return messages_with_schema(request.messages, request.json_schema)
    return request.messages


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The chat-completions JSON body (without the provider extras)."""
    body: dict[str, Any] = {
        "model": model_name(request.model),
        "messages": request_messages(request),
        "temperature": request.temperature,
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.seed is not None:
        body["seed"] = request.seed
    fmt = response_format(request)
    if fmt is not None:
        body["response_format"] = fmt
    return body


async def list_models(api_base: str | None, api_key: str | None, timeout_s: float) -> list[str]:
    """The ids of GET {api_base}/models. LLMError (with its kind) when the endpoint cannot say."""
    import aiohttp

    url = (api_base or OPENAI_BASE).rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key or 'not-needed'}"}
    try:
        async with (
            new_session(1) as session,
            session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s), proxy=proxy_for(url)
            ) as resp,
        ):
            raw = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise LLMError(redact(f"cannot reach {url}: {type(exc).__name__}: {exc}", api_key)[:300]) from None
    if status >= 400:
        error = status_error(status, raw[:300].decode("utf-8", "replace"), None, api_key)
        raise error if isinstance(error, LLMError) else LLMError(str(error))
    try:
        return [str(item["id"]) for item in json.loads(raw)["data"]]
    except (ValueError, KeyError, TypeError):
        raise LLMError(f"{url} did not answer with a model list") from None


def map_sdk_error(exc: Exception, secret: Secrets) -> Exception:
    """openai SDK (and LiteLLM, whose exceptions subclass the SDK's) exception -> ours."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return RetryableLLMError("timed out")
    if isinstance(exc, openai.APIConnectionError):
        return RetryableLLMError(redact(f"connection error: {exc}", secret)[:300])
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        response = getattr(exc, "response", None)
        body = getattr(exc, "body", None)  # the SDK's parsed `error` object: its message without the repr around it
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message.strip():
            message = getattr(exc, "message", str(exc))
        return status_error(status, message, getattr(response, "headers", None), secret)
    return LLMError(redact(f"{type(exc).__name__}: {exc}", secret)[:300])


class OpenAIBackend:
    """openai.AsyncOpenAI(base_url=api_base) with its own retries off (the client retries)."""

    name = "openai"

    def __init__(self, api_base: str | None, api_key: str | None, timeout_s: float, max_connections: int):
        import openai

        self._secret = api_key
        self._client = openai.AsyncOpenAI(
            base_url=api_base or OPENAI_BASE,
            api_key=api_key or "not-needed",  # keyless local servers still need a non-empty string
            max_retries=0,
            timeout=timeout_s,
            http_client=http_client(max_connections, timeout_s),
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        import openai

        extra = request.provider_extra()
        started = time.perf_counter()
        try:
            out = await self._client.chat.completions.create(**request_body(request), extra_body=extra or None)
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, self._secret) from None
        if not out.choices:
            raise LLMError(f"{request.model}: the answer has no choices")
        choice = out.choices[0]
        usage = out.usage
        return ChatResponse(
            text=choice.message.content or "",
            model=out.model or request.model,
            usage=Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else Usage(),
            latency_s=time.perf_counter() - started,
            finish_reason=choice.finish_reason,
        )

    async def aclose(self) -> None:
        await close_quietly(self._client.close)


class LeanOpenAIBackend:
    """POST {api_base}/chat/completions with aiohttp and read the JSON: no SDK, same error mapping."""

    name = "openai-lean"

    def __init__(self, api_base: str | None, api_key: str | None, timeout_s: float, max_connections: int):
        self._url = (api_base or OPENAI_BASE).rstrip("/") + "/chat/completions"
        self._proxy = proxy_for(self._url)
        self._secret = api_key
        self._headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key or 'not-needed'}"}
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._session = None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        import aiohttp

        if self._session is None:
            self._session = new_session(self._max_connections)
            self._timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        body = request_body(request)
        body.update(request.provider_extra())
        started = time.perf_counter()
        try:
            async with self._session.post(
                self._url, data=json.dumps(body), headers=self._headers, timeout=self._timeout, proxy=self._proxy
            ) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except TimeoutError:
            raise RetryableLLMError("timed out") from None
        except aiohttp.ClientError as exc:
            raise RetryableLLMError(redact(f"connection error: {type(exc).__name__}: {exc}", self._secret)) from None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if status >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            message = error.get("message") if isinstance(error, dict) else raw[:300].decode("utf-8", "replace")
            raise status_error(status, message, headers, self._secret)
        try:
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return ChatResponse(
                text=choice["message"].get("content") or "",
                model=data.get("model") or request.model,
                usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
                latency_s=time.perf_counter() - started,
                finish_reason=choice.get("finish_reason"),
            )
        except (TypeError, KeyError, IndexError, AttributeError):
            raise LLMError(f"{request.model}: the endpoint's answer is not a chat completion") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await close_quietly(self._session.close)
            self._session = None
