"""HTTP plumbing shared by the backends: an httpx transport over aiohttp, and status-code mapping.

Why aiohttp under the SDKs: the openai and anthropic SDKs speak httpx, whose connection pool
(httpcore) costs time that grows with the number of connections. Measured here against a local
server at 64 concurrent requests: the openai SDK on its default httpx client ~250 requests/s, on
this transport ~1,000 (benchmarks/llm_throughput.py). The SDK still builds the requests and parses
the answers and errors; only the sockets change. aiohttp is already installed (LiteLLM needs it).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import re
import urllib.parse
import urllib.request

import aiohttp

from assay.llm.retry import is_retryable_status, parse_retry_after
from assay.llm.types import LLMError, RetryableLLMError, Secrets, redact

_DROP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def new_session(max_connections: int, decompress: bool = True) -> aiohttp.ClientSession:
    """A keep-alive session (must be made inside the event loop that will use it).

    trust_env is off: with it on, aiohttp looks up ~/.netrc and the proxy variables in a worker thread
    on every request, which halves the request rate; `proxy_for` does the proxy lookup once per host."""
    connector = aiohttp.TCPConnector(limit=max(1, max_connections), limit_per_host=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, auto_decompress=decompress, trust_env=False)


@functools.lru_cache(maxsize=64)
def _proxy_for_origin(scheme: str, host: str) -> str | None:
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(host):
        return None
    return proxies.get(scheme)


def proxy_for(url: str) -> str | None:
    """The proxy the environment (HTTP(S)_PROXY, NO_PROXY) names for `url`, or None."""
    parts = urllib.parse.urlsplit(url)
    return _proxy_for_origin(parts.scheme, parts.hostname or "")


def _transport_class(hx):
    """An `hx.AsyncBaseTransport` over aiohttp, for hx = httpx (openai SDK) or httpx2 (anthropic SDK,
    which ships its own fork of httpx with the same interface)."""

    class AiohttpTransport(hx.AsyncBaseTransport):
        """Requests go out through one aiohttp session (made lazily, inside the loop that uses it)."""

        def __init__(self, max_connections: int = 64):
            self.max_connections = max_connections
            self._session: aiohttp.ClientSession | None = None

        async def handle_async_request(self, request):
            if self._session is None or self._session.closed:
                # a gzip body goes to httpx still compressed: httpx decodes it by its headers
                self._session = new_session(self.max_connections, decompress=False)
            limits = request.extensions.get("timeout") or {}
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=limits.get("connect"), sock_read=limits.get("read")
            )
            headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _DROP_HEADERS]
            body = await request.aread()
            try:
                async with self._session.request(
                    request.method,
                    str(request.url),
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,
                    timeout=timeout,
                    proxy=proxy_for(str(request.url)),
                    skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                ) as resp:
                    content = await resp.read()
                    status, raw_headers = resp.status, list(resp.raw_headers)
            except TimeoutError as exc:  # aiohttp's timeouts subclass asyncio.TimeoutError (= TimeoutError)
                raise hx.ReadTimeout(f"timed out: {exc}", request=request) from None
            except aiohttp.ClientConnectorError as exc:
                raise hx.ConnectError(str(exc), request=request) from None
            except aiohttp.ClientError as exc:
                raise hx.RemoteProtocolError(f"{type(exc).__name__}: {exc}", request=request) from None
            return hx.Response(status, headers=raw_headers, content=content, request=request)

        async def aclose(self) -> None:
            if self._session is not None:
                await self._session.close()
                self._session = None

    return AiohttpTransport


@functools.cache
def transport_class(module: str = "httpx") -> type:
    return _transport_class(importlib.import_module(module))


def http_client(max_connections: int, timeout_s: float, module: str = "httpx"):
    """The httpx (or httpx2) client handed to an SDK."""
    hx = importlib.import_module(module)
    return hx.AsyncClient(transport=transport_class(module)(max_connections), timeout=timeout_s)


# What a request-validation message says, whatever the server (FastAPI/pydantic, OpenAI, vLLM,
# llama.cpp, LiteLLM): a 5xx with such a body is a rejected request, not a server failure.
_VALIDATION = re.compile(
    r"validation error|input should be|field required|extra inputs are not permitted|unrecognized request "
    r"argument|invalid[ _]request|invalid_request_error|is not supported|unsupported|not allowed|"
    r"literal_error|value_error|unprocessable|'loc':|\"loc\":|invalid value|invalid type|must be one of",
    re.IGNORECASE,
)
_CONTENT_POLICY = re.compile(r"content[ _]?policy|content[ _]?management|content[ _]?filter|safety system", re.I)
_MODEL = re.compile(r"\bmodels?\b", re.IGNORECASE)


def is_validation_message(text: str) -> bool:
    """True when an error body reads as a rejected request (see _VALIDATION)."""
    return bool(_VALIDATION.search(text))


def status_error(status: int, message: str, headers=None, secret: Secrets = None) -> Exception:
    """The exception for an HTTP error answer: retryable (408/409/429, a 5xx that is not a rejected
    request) or a permanent LLMError with its kind and a fix (types.PERMANENT_KINDS).

    The server's text is kept short and scrubbed of the key; for 401/403 it is dropped (some
    servers echo the rejected key). `secret`: the key, or every key to scrub."""
    if status in (401, 403):
        return LLMError(
            f"HTTP {status}: the server rejected the API key",
            kind="auth",
            fix="check --api-key-env / --env-file (and that the key is for this endpoint)",
        )
    text = redact(" ".join(str(message).split()), secret)[:300]
    if _CONTENT_POLICY.search(text) and status < 500:
        return LLMError(f"HTTP {status}: {text}", kind="content_policy", fix="the provider refused the content")
    if is_retryable_status(status) and not (status >= 500 and is_validation_message(text)):
        return RetryableLLMError(f"HTTP {status}: {text}", status=status, retry_after=parse_retry_after(headers))
    if status == 404:
        if _MODEL.search(text):
            return LLMError(
                f"HTTP 404: {text}",
                kind="unknown_model",
                fix="`assay llm check --model M --api-base URL` lists the models the endpoint serves",
            )
        return LLMError(
            f"HTTP 404: {text}", kind="not_found", fix="check --api-base (an OpenAI-compatible one usually ends in /v1)"
        )
    if status in (400, 422) or is_validation_message(text):
        return LLMError(f"HTTP {status}: {text}", kind="validation")
    return LLMError(f"HTTP {status}: {text}", kind="client_error")


async def close_quietly(closer) -> None:
    """Await `closer()` ignoring errors of an already-closed or foreign-loop resource."""
    with contextlib.suppress(RuntimeError, OSError):
        await closer()
