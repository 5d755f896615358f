"""Structured output: JSON extraction and repair, validation, and repair rounds with the model."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from assay.llm import ChatRequest, extract_json, parse_structured
from assay.llm.structured import JSONExtractError
from assay.llm.testserver import Reply
from tests.llm.conftest import fast_settings


class Vibe(BaseModel):
    mood: str
    tempo: int


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"a": 1}', {"a": 1}),
        ("[1, 2]", [1, 2]),
        ('Sure! Here it is:\n```json\n{"a": [1, 2]}\n```\nAnything else?', {"a": [1, 2]}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('The answer is {"a": {"b": "}"}} as requested.', {"a": {"b": "}"}}),
        ('{"a": 1, "b": [1, 2,],}', {"a": 1, "b": [1, 2]}),
        ('{"text": "a, ] b",}', {"text": "a, ] b"}),
        ("{\u201ca\u201d: \u201cb\u201d}", {"a": "b"}),
        ('{"quote": "she said \u201chi\u201d"}', {"quote": "she said \u201chi\u201d"}),
        ('{"s": "escaped \\" quote {"}', {"s": 'escaped " quote {'}),
    ],
)
def test_extract_json(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    "text,why",
    [("no json here", "no JSON"), ('{"a": "unterminated', "cut off"), ("{'a': 1}", "does not parse")],
)
def test_extract_json_failures_say_why(text, why):
    with pytest.raises(JSONExtractError, match=why):
        extract_json(text)


def test_parse_structured_with_models_callables_and_none():
    assert parse_structured('{"mood": "calm", "tempo": 90}', Vibe) == (Vibe(mood="calm", tempo=90), None)
    value, error = parse_structured('{"mood": "calm", "tempo": "fast"}', Vibe)
    assert value is None and error.startswith("tempo:")
    value, error = parse_structured('{"mood": "calm"}', Vibe)
    assert value is None and "tempo: field required" in error
    assert parse_structured("[1, 2]", None) == ([1, 2], None)

    def positive(obj):
        if obj["n"] <= 0:
            raise ValueError("n must be positive")
        return obj["n"]

    assert parse_structured('{"n": 3}', positive) == (3, None)
    assert parse_structured('{"n": -1}', positive) == (None, "n must be positive")
    assert parse_structured("oops", positive)[1].startswith("invalid JSON")


@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_malformed_answer_gets_a_repair_round(server, make_client, transport):
    server.push(Reply.malformed('{"mood": "calm", "tempo": '), Reply.json({"mood": "calm", "tempo": 90}))
    client = make_client(fast_settings(server, transport=transport))
    result = client.complete_json_sync(ChatRequest.prompt("Describe the vibe."), Vibe)
    assert result.ok and result.value == Vibe(mood="calm", tempo=90) and result.attempts == 2
    first, second = (r.body for r in server.requests)
    fmt = first["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Vibe"
    assert fmt["json_schema"]["schema"]["required"] == ["mood", "tempo"] and fmt["json_schema"]["strict"] is False
    assert second["messages"][-2] == {"role": "assistant", "content": '{"mood": "calm", "tempo": '}
    assert "not valid: invalid JSON" in second["messages"][-1]["content"]
    assert "JSON Schema" in second["messages"][-1]["content"]


def test_validation_error_is_quoted_and_repairs_run_out(server, make_client):
    bad = Reply.json({"mood": "calm", "tempo": "fast"})
    server.push(bad, bad, bad)
    client = make_client(fast_settings(server, repair_attempts=2))
    result = client.complete_json_sync(ChatRequest.prompt("Describe the vibe."), Vibe)
    assert not result.ok and result.value is None and result.attempts == 3
    assert result.error.startswith("tempo:") and result.raw_text == json.dumps({"mood": "calm", "tempo": "fast"})
    assert "tempo:" in server.requests[1].body["messages"][-1]["content"]
    assert server.count == 3


def test_no_repair_when_disabled_and_explicit_schema_kept(server, make_client):
    server.push(Reply.malformed())
    client = make_client(fast_settings(server))
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    request = ChatRequest.prompt("x?", json_schema=schema, schema_name="xy")
    result = client.complete_json_sync(request, None, repair_attempts=0)
    assert not result.ok and result.attempts == 1
    sent = server.requests[0].body["response_format"]["json_schema"]
    assert sent == {"name": "xy", "schema": schema, "strict": False}
