"""Anthropic's Messages API through the anthropic SDK.

System messages move into `system`; `max_tokens` (required by the API) defaults to 4096. The pinned
SDK (anthropic 2.x) has no sampling parameters: `temperature`, `top_p` and `seed` are not sent (they
still key the cache); pass them in `extra` for a server that takes them. A JSON Schema whose root is an
object is enforced the way Claude does structured output: one forced tool whose input is the answer
(the answer text is that input as JSON); other schemas go into the system prompt as instructions.
"""

from __future__ import annotations

import json
import time

from assay.llm.backends.http import close_quietly, http_client, status_error
from assay.llm.structured import schema_instruction
from assay.llm.types import ChatRequest, ChatResponse, LLMError, RetryableLLMError, Secrets, Usage, redact

DEFAULT_MAX_TOKENS = 4096


def map_anthropic_error(exc: Exception, secret: Secrets) -> Exception:
    import anthropic

    if isinstance(exc, anthropic.APITimeoutError):
        return RetryableLLMError("timed out")
    if isinstance(exc, anthropic.APIConnectionError):
        return RetryableLLMError(redact(f"connection error: {exc}", secret)[:300])
    if isinstance(exc, anthropic.APIStatusError):
        return status_error(exc.status_code, exc.message, exc.response.headers, secret)
    return LLMError(redact(f"{type(exc).__name__}: {exc}", secret)[:300])


def request_kwargs(request: ChatRequest) -> dict:
    system = [str(m["content"]) for m in request.messages if m.get("role") == "system"]
    kwargs: dict = {
        "model": request.model.removeprefix("anthropic/"),
        "messages": [m for m in request.messages if m.get("role") != "system"],
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
    }
    schema = request.json_schema
    if schema is not None and request.structured == "prompt":
        system.append(schema_instruction(schema))
    elif schema is not None and schema.get("type") == "object":
        kwargs["tools"] = [
            {
                "name": request.schema_name,
                "description": "Give the answer as this tool's input.",
                "input_schema": schema,
            }
        ]
        kwargs["tool_choice"] = {"type": "tool", "name": request.schema_name}
    elif schema is not None:
        system.append(schema_instruction(schema))
    if system:
        kwargs["system"] = "\n\n".join(system)
    return kwargs


class AnthropicBackend:
    name = "anthropic"

    def __init__(self, api_base: str | None, api_key: str | None, timeout_s: float, max_connections: int):
        import anthropic

        self._secret = api_key
        # the SDK appends /v1/messages itself; accept an api_base given with or without /v1
        base = api_base.rstrip("/").removesuffix("/v1") if api_base else None
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or "not-needed",
            base_url=base,
            max_retries=0,
            timeout=timeout_s,
            http_client=http_client(max_connections, timeout_s, module="httpx2"),
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        import anthropic

        extra = request.provider_extra()
        started = time.perf_counter()
        try:
            out = await self._client.messages.create(**request_kwargs(request), extra_body=extra or None)
        except anthropic.AnthropicError as exc:
            raise map_anthropic_error(exc, self._secret) from None
        tool = next((b for b in out.content if b.type == "tool_use"), None)
        if tool is not None:
            text = json.dumps(tool.input, ensure_ascii=False)
        else:
            text = "".join(b.text for b in out.content if b.type == "text")
        return ChatResponse(
            text=text,
            model=out.model or request.model,
            usage=Usage(out.usage.input_tokens or 0, out.usage.output_tokens or 0),
            latency_s=time.perf_counter() - started,
            finish_reason=out.stop_reason,
        )

    async def aclose(self) -> None:
        await close_quietly(self._client.close)
