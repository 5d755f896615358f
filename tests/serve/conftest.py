"""A real `assay serve` process on a free local port, with the tiny judges and LM."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest

from tests.conftest import ROOT, assay_cmd

STARTUP_TIMEOUT_S = 60
RUNNING: list[Server] = []  # their stderr goes into the report of a failed test (pytest_runtest_makereport)


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    stderr_lines: list[str] = field(default_factory=list)  # filled by a thread as the server writes
    token: str | None = None  # sent as `Authorization: Bearer` by request()
    readers: list[threading.Thread] = field(default_factory=list)

    def stderr(self, tail: int = 200) -> str:
        return "".join(self.stderr_lines[-tail:])

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, parsed JSON or raw bytes, headers) of one request."""
        headers = dict(headers or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                status, raw, hdrs = response.status, response.read(), response.headers
        except urllib.error.HTTPError as err:
            status, raw, hdrs = err.code, err.read(), err.headers
        try:
            return status, json.loads(raw), hdrs
        except (json.JSONDecodeError, UnicodeDecodeError):
            return status, raw, hdrs

    def post(self, path: str, obj) -> tuple[int, object]:
        status, data, _ = self.request("POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"})
        return status, data

    def stats(self) -> dict:
        return self.request("GET", "/api/models")[1]["stats"]


def _drain(stream, sink, end: bool = False) -> None:
    """Read a pipe to its end (a thread): a chatty server never blocks on a full pipe. With `end`,
    `sink(None)` says the pipe closed."""
    for line in stream:
        sink(line)
    stream.close()
    if end:
        sink(None)


def start_server(
    *args: str, timeout: float = STARTUP_TIMEOUT_S, cmd: list[str] | None = None, env: dict | None = None
) -> Server:
    """Start `assay serve --port 0 ...` (or `cmd`), wait for the URL it prints and /healthz; after
    `timeout` seconds without them, kill it and fail with what it wrote to stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        cmd or [*assay_cmd(), "serve", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout: queue.Queue[str | None] = queue.Queue()
    server = Server("", process)
    server.readers = [
        threading.Thread(target=_drain, args=(process.stderr, server.stderr_lines.append), daemon=True),
        threading.Thread(target=_drain, args=(process.stdout, stdout.put, True), daemon=True),
    ]
    for reader in server.readers:
        reader.start()

    def fail(why: str):
        stop_server(server)
        raise RuntimeError(f"the server {why}; its stderr:\n{server.stderr()}")

    deadline = time.monotonic() + timeout
    try:  # "assay serve: judge + LM on http://127.0.0.1:PORT/ (...)"
        line = stdout.get(timeout=timeout)
    except queue.Empty:
        fail(f"printed no URL within {timeout:.0f} s")
    if line is None or "http://" not in line:
        with contextlib.suppress(subprocess.TimeoutExpired):  # (its stdout closes as it exits)
            process.wait(timeout=5 if line is None else 0.1)
        fail(f"did not start (exit status {process.poll()}, first line {line!r})")
    server.url = line.split(" on ", 1)[1].split()[0].rstrip("/")
    while time.monotonic() < deadline:
        try:
            if server.request("GET", "/healthz")[0] == 200:
                RUNNING.append(server)
                return server
        except OSError:
            time.sleep(0.1)
    fail(f"never answered /healthz within {timeout:.0f} s")


def stop_server(server: Server) -> None:
    if server in RUNNING:
        RUNNING.remove(server)
    if server.process.poll() is None:
        server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    for reader in server.readers:
        reader.join(timeout=5)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for server in RUNNING:
            report.sections.append((f"stderr of the server at {server.url}", server.stderr(tail=50)))
    return report


@pytest.fixture(scope="session")
def server(judges, tiny_lm):
    """`assay serve --judge JUDGES --lm LM` with small limits, so the limit tests stay small."""
    srv = start_server(
        "--judge",
        str(judges),
        "--lm",
        str(tiny_lm),
        "--set",
        "limits.max_request_bytes=4096",
        "--set",
        "limits.max_text_chars=1000",
        "--set",
        "limits.max_texts=8",
        "--set",
        "limits.max_generate_tokens=200",
        "--set",
        "limits.batch_wait_ms=20",
        "--set",
        "server.threads=1",
    )
    yield srv
    stop_server(srv)


TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="session")
def guarded(judges, tiny_lm):
    """A server as exposed: a token (from an environment variable), an extra Host name, a queue of
    one text scored one at a time, one generation at a time, and an access-log line per request
    on stderr (chatty: the fixture must keep draining it)."""
    srv = start_server(
        "--judge",
        str(judges),
        "--lm",
        str(tiny_lm),
        "--token-env",
        "ASSAY_TEST_TOKEN",
        "--allow-host",
        "judge.example",
        "--set",
        "limits.max_queued_texts=1",
        "--set",
        "limits.batch_texts=1",
        "--set",
        "limits.batch_wait_ms=0",
        "--set",
        "limits.max_generations=1",
        "--set",
        "server.log_requests=true",
        "--set",
        "server.threads=1",
        env={"ASSAY_TEST_TOKEN": TOKEN},
    )
    srv.token = TOKEN
    yield srv
    stop_server(srv)
