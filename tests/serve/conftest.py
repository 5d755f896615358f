"""A real `assay serve` process on a free local port, with the tiny judges and LM."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from tests.conftest import ROOT, assay_cmd


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, parsed JSON or raw bytes, headers) of one request."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
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


def start_server(*args: str, timeout: float = 90) -> Server:
    """Start `assay serve --port 0 ...` and wait for the URL it prints and /healthz."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*assay_cmd(), "serve", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    line = process.stdout.readline()  # "assay serve: judge + LM on http://127.0.0.1:PORT/ (...)"
    if "http://" not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r} {process.stderr.read()}")
    url = line.split(" on ", 1)[1].split()[0].rstrip("/")
    server = Server(url, process)
    while time.monotonic() < deadline:
        try:
            if server.request("GET", "/healthz")[0] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server never answered /healthz")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


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
