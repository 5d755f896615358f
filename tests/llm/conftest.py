"""Fixtures of the LLM tests: a scripted OpenAI-compatible server on 127.0.0.1 and clients pointed at it,
and `needs_smollm2` for tests of the real local model."""

from __future__ import annotations

import pytest

from assay.llm import LLMClient, LLMSettings
from assay.llm.testserver import ScriptedServer
from tests.conftest import needs_smollm2, require_smollm2  # noqa: F401 (the LLM tests import them from here)


@pytest.fixture
def server():
    """A fresh scripted server (echo answers unless replies are pushed)."""
    with ScriptedServer() as srv:
        yield srv


def fast_settings(server: ScriptedServer, **overrides) -> LLMSettings:
    """Settings for `server` with short, deterministic backoff (10 ms doubling to 40 ms, no jitter)."""
    values = {
        "model": "openai/test",
        "api_base": server.base_url,
        "backoff_start_s": 0.01,
        "backoff_cap_s": 0.04,
        "jitter": "none",
        "timeout_s": 10.0,
        **overrides,
    }
    return LLMSettings(**values)


@pytest.fixture
def make_client():
    """make_client(settings) -> LLMClient, closed at the end of the test."""
    clients: list[LLMClient] = []

    def make(settings: LLMSettings) -> LLMClient:
        client = LLMClient(settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
