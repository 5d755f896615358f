"""The request and response of one chat completion, the LLM errors, and keeping keys out of them.

A `ChatRequest` holds everything that changes the answer (it is what the response cache keys on);
a `ChatResponse` is what any backend returns. Both are plain frozen dataclasses: the client
builds thousands of them per second. `redact` / `known_secrets` are the one place where error
messages and library logs lose API keys.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assay.errors import AssayError


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion.

    model: "openai/NAME", "anthropic/NAME", "local/smollm2", any LiteLLM string; "" means the
        client's configured model.
    messages: [{"role": "system"|"user"|"assistant", "content": str}, ...]
    temperature, max_tokens, top_p, seed: sampling parameters (None = the provider's default).
    json_schema: a JSON Schema the answer must follow (sent to providers that support it; the
        client validates locally either way); schema_name names it for the provider.
    extra: provider parameters sent with the request. Keys starting with "_" are not sent: they only
        enter the cache key (e.g. {"_candidate": 3} asks for a fresh sample of an otherwise equal request).
    structured: how json_schema travels (structured.STRUCTURED_MODES); None: the backend's own way
        (structured.NATIVE_MODE). The client sets it from LLMSettings.structured.
    """

    model: str
    messages: list[dict[str, Any]]
    temperature: float = 0.0
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    json_schema: dict | None = None
    schema_name: str = "response"
    extra: dict[str, Any] = field(default_factory=dict)
    structured: str | None = None

    @classmethod
    def prompt(cls, text: str, *, system: str | None = None, model: str = "", **params: Any) -> ChatRequest:
        """A request of one user message (after an optional system message)."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": text})
        return cls(model=model, messages=messages, **params)

    def replace(self, **changes: Any) -> ChatRequest:
        return dataclasses.replace(self, **changes)

    def provider_extra(self) -> dict[str, Any]:
        """`extra` without the cache-only "_" keys: what goes to the provider."""
        return {k: v for k, v in self.extra.items() if not k.startswith("_")}


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """One answer. cost_usd is what this call cost (0.0 for a cache hit); latency_s is the time the
    caller waited, retries included (for a cache hit: the lookup)."""

    text: str
    model: str
    usage: Usage = Usage()
    cost_usd: float = 0.0
    cached: bool = False
    latency_s: float = 0.0
    finish_reason: str | None = None

    def replace(self, **changes: Any) -> ChatResponse:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "model": self.model,
            "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens},
            "cost_usd": self.cost_usd,
            "cached": self.cached,
            "latency_s": self.latency_s,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatResponse:
        usage = data.get("usage") or {}
        return cls(
            text=data["text"],
            model=data.get("model", ""),
            usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
            cost_usd=float(data.get("cost_usd", 0.0)),
            cached=bool(data.get("cached", False)),
            latency_s=float(data.get("latency_s", 0.0)),
            finish_reason=data.get("finish_reason"),
        )


# Kinds of LLMError that no retry and no later row can cure: the same request fails the same way
# every time (`permanent`), so a pipeline stops after a few of them in a row (pipeline/runner.py).
PERMANENT_KINDS = frozenset({"validation", "unknown_model", "not_found", "auth", "content_policy", "client_error"})


class LLMError(AssayError):
    """An LLM call failed for good (bad request, bad key, retries exhausted). One line, never a key.

    kind: what failed, when known: "validation" (the endpoint rejected the request's shape),
    "unknown_model", "not_found" (no such route: a wrong api_base), "auth", "content_policy",
    "client_error" (another 4xx), "exhausted" (retries spent on transient failures) or None.
    fix: one sentence telling the user what to change, shown after the message by the pipelines.
    """

    def __init__(self, message: str, kind: str | None = None, fix: str | None = None):
        super().__init__(" ".join(str(message).split()))
        self.kind = kind
        self.fix = fix

    @property
    def permanent(self) -> bool:
        """True when repeating the request cannot succeed (see PERMANENT_KINDS)."""
        return self.kind in PERMANENT_KINDS

    def with_message(self, message: str) -> LLMError:
        """The same error (kind, fix) with another message."""
        return LLMError(message, self.kind, self.fix)


class RetryableLLMError(Exception):
    """Internal: an attempt failed in a way worth retrying (429, 5xx, timeout, connection error).

    status: the HTTP status if there was one; retry_after: seconds the server asked us to wait.
    """

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(" ".join(str(message).split()))
        self.status = status
        self.retry_after = retry_after


# Variables whose values are never shown (besides the key in use): provider keys and tokens
# (OPENAI_API_KEY, GEMINI_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY, ...) wherever LiteLLM or an SDK
# may have read them from.
SECRET_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
MIN_FOUND_SECRET = 8  # values found by name: shorter ones are not keys, replacing them would mangle text


Secrets = str | Iterable[str] | None  # one secret, several, or none


def redact(text: str, *secrets: Secrets) -> str:
    """`text` with every occurrence of each secret replaced by '***' (short secrets are left alone:
    replacing a 1-3 character string would mangle the message and protect nothing). The one redaction
    helper of assay.llm: every error message about a provider call goes through it."""
    flat = {s for item in secrets for s in ((item,) if isinstance(item, str) or item is None else item)}
    for secret in sorted({s for s in flat if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")  # (longest first: a key that contains another goes whole)
    return text


def known_secrets(api_key: str | None = None, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """What errors and logs must not show: the key in use, and the value of every variable named like a
    key (SECRET_NAME) in the env file's values `env` and in the process environment (read now)."""
    found = {api_key} if api_key else set()
    for source in (env or {}, os.environ):
        found.update(
            value for name, value in source.items() if SECRET_NAME.search(name) and len(value) >= MIN_FOUND_SECRET
        )
    return tuple(found)


class RedactingFilter(logging.Filter):
    """A logger filter that replaces known_secrets() (and `extra` ones) in each record's text, before
    any handler sees it. For loggers of libraries that may log a request or an error (LiteLLM)."""

    def __init__(self) -> None:
        super().__init__()
        self.extra: set[str] = set()  # e.g. the env file's keys, added by the backend that read them

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = (*known_secrets(), *self.extra)
        message = record.getMessage()
        clean = redact(message, *secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, *secrets)
        return True
