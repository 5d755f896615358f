"""Structured-output modes (json_schema, json_object_schema, json_object, prompt), `auto` with its
fallback and remembered mode, against the scripted server made to accept only some shapes (as
llama.cpp's server does: json_object with a schema, nothing else). The same fallback against the
real llama.cpp server is in tests/integration."""

from __future__ import annotations

import asyncio
import json

import pytest

from assay.errors import ConfigError
from assay.llm import ChatRequest, LLMClient, LLMError, cache_key
from assay.llm.backends.openai_compat import request_body
from assay.llm.cache import request_key_payload
from assay.llm.structured import PROBE_SCHEMA, STRUCTURED_MODES
from assay.llm.testserver import Reply, ScriptedServer
from tests.llm.conftest import fast_settings

SCHEMA = {"type": "object", "properties": {"mood": {"type": "string"}}, "required": ["mood"]}


def schema_request(**kw) -> ChatRequest:
    return ChatRequest.prompt("Describe a storm.", system="You describe moods.", json_schema=SCHEMA, **kw)


@pytest.mark.parametrize("mode", [None, *STRUCTURED_MODES])
def test_each_mode_has_its_request_body(mode):
    body = request_body(schema_request(model="openai/m", structured=mode))
    system = body["messages"][0]["content"]
    if mode in (None, "json_schema"):
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": SCHEMA, "strict": False},
        }
    elif mode == "json_object_schema":
        assert body["response_format"] == {"type": "json_object", "schema": SCHEMA}
    elif mode == "json_object":
        assert body["response_format"] == {"type": "json_object"}
    else:
        assert "response_format" not in body
    schema_in_prompt = json.dumps(SCHEMA) in system
    assert schema_in_prompt == (mode in ("json_object", "prompt"))
    assert system.startswith("You describe moods.") and len(body["messages"]) == 2
    # the user's own turns are never changed
    assert body["messages"][1] == {"role": "user", "content": "Describe a storm."}


def test_the_cache_key_holds_the_mode_and_old_keys_stay_valid():
    plain = schema_request(model="openai/m")
    keys = {cache_key(plain.replace(structured=m), "openai", "http://x/v1") for m in STRUCTURED_MODES}
    assert len(keys) == len(STRUCTURED_MODES)
    assert "structured" not in request_key_payload(plain, "openai", None)  # the native mode: as before the modes


def test_auto_falls_back_to_the_mode_the_endpoint_takes_and_remembers_it(make_client, tmp_path):
    answer = Reply.json({"mood": "stormy"})
    with ScriptedServer(formats={"json_object_schema"}) as server:
        server.push(answer, answer, answer)
        settings = fast_settings(server, cache=tmp_path / "llm.sqlite", max_retries=3)
        client = make_client(settings)
        result = client.complete_json_sync(schema_request())
        assert result.ok and result.value == {"mood": "stormy"}
        sent = [r.body["response_format"] for r in server.requests]
        # json_schema is rejected (a 500 with a validation message: not retried), then json_object_schema works
        assert [f["type"] for f in sent] == ["json_schema", "json_object"] and sent[1]["schema"] == SCHEMA
        assert client.known_mode() == "json_object_schema"
        assert client.usage.summary()["retries"] == 0
        # the next request goes straight to the mode found
        client.complete_sync(schema_request(seed=1))
        assert len(server.requests) == 3 and server.requests[-1].body["response_format"]["type"] == "json_object"
        client.close()
        # a later client with the same cache knows the mode without asking
        again = make_client(settings)
        assert again.known_mode() == "json_object_schema"
        assert asyncio.run(again.resolve_structured_mode()) == "json_object_schema"
        assert len(server.requests) == 3


def test_auto_ends_at_the_prompt_mode_on_an_endpoint_without_structured_output(make_client):
    with ScriptedServer(formats=(), format_status=400) as server:
        client = make_client(fast_settings(server))
        server.push(Reply.json({"mood": "calm"}))
        assert asyncio.run(client.resolve_structured_mode()) == "prompt"
        shapes = [r.body.get("response_format", {}).get("type") for r in server.requests]
        assert shapes == ["json_schema", "json_object", "json_object", None]
        last = server.requests[-1].body
        assert json.dumps(PROBE_SCHEMA) in last["messages"][0]["content"]


def test_concurrent_first_requests_probe_once(make_client):
    with ScriptedServer(formats={"json_object_schema"}, responder=lambda body: '{"mood": "x"}') as server:
        client = make_client(fast_settings(server))

        async def many():
            return await asyncio.gather(*(client.complete(schema_request(seed=i)) for i in range(6)))

        asyncio.run(many())
        shapes = [r.body["response_format"]["type"] for r in server.requests]
        assert shapes.count("json_schema") == 1 and len(shapes) == 7  # one rejection, then six answers


def test_a_row_specific_rejection_does_not_demote_the_mode(make_client):
    with ScriptedServer(responder=lambda body: '{"mood": "x"}') as server:
        client = make_client(fast_settings(server))
        client.complete_sync(schema_request())
        assert client.known_mode() == "json_schema"
        too_long = "This model's maximum context length is 2048 tokens. However, you requested 4615 tokens."
        server.push(Reply(status=400, body={"error": {"message": too_long, "type": "invalid_request_error"}}))
        with pytest.raises(LLMError, match="maximum context length") as exc:
            client.complete_sync(schema_request(seed=5))
        assert exc.value.permanent and client.known_mode() == "json_schema"


def test_an_explicit_mode_the_endpoint_rejects_is_one_permanent_error_with_the_fix(make_client):
    with ScriptedServer(formats={"json_object_schema"}) as server:
        client = make_client(fast_settings(server, structured="json_schema", max_retries=4))
        with pytest.raises(LLMError) as exc:
            client.complete_sync(schema_request())
        assert len(server.requests) == 1  # not retried
        assert exc.value.permanent and exc.value.kind == "validation"
        assert "llm.structured=auto" in exc.value.fix and "rejects llm.structured=json_schema" in exc.value.fix


def test_the_local_model_and_anthropic_take_auto_or_prompt_only():
    with pytest.raises(ConfigError, match="takes auto \\(grammar\\) or prompt"):
        LLMClient(fast_settings_for("local/smollm2", structured="json_object"))
    with pytest.raises(ConfigError, match="takes auto \\(tool\\) or prompt"):
        LLMClient(fast_settings_for("anthropic/claude", structured="json_schema", api_key_env="HOME"))
    client = LLMClient(fast_settings_for("local/smollm2", structured="prompt"))
    assert client.known_mode() == "prompt"
    client.close()


def fast_settings_for(model: str, **kw):
    from assay.llm import LLMSettings

    return LLMSettings(model=model, **kw)


def test_litellm_sends_each_mode_to_an_openai_compatible_server(make_client):
    formats = {"json_object_schema", "json_object"}
    with ScriptedServer(formats=formats, responder=lambda body: '{"mood": "x"}') as server:
        client = make_client(fast_settings(server, model="litellm/openai/scripted"))
        assert client.complete_json_sync(schema_request()).ok
        assert client.known_mode() == "json_object_schema"
        fmt = server.requests[-1].body["response_format"]
        assert fmt == {"type": "json_object", "schema": SCHEMA}
        for mode in ("json_object", "prompt"):
            client.complete_sync(schema_request(structured=mode))
            body = server.requests[-1].body
            assert body.get("response_format") == ({"type": "json_object"} if mode == "json_object" else None)
            assert json.dumps(SCHEMA) in body["messages"][0]["content"]
