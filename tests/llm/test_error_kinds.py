"""Which failures are permanent (never retried; a pipeline stops after a few in a row) and which are
worth retrying: the status code and, for a 5xx, whether the body reads as a rejected request."""

from __future__ import annotations

import pytest

from assay.llm import LLMError, RetryableLLMError
from assay.llm.backends.http import status_error
from assay.llm.testserver import Reply
from tests.llm.conftest import fast_settings

LLAMACPP_500 = (
    "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
)


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (500, LLAMACPP_500, "validation"),  # llama-cpp-python's server answers a bad request with a 500
        (422, "Unprocessable Entity", "validation"),
        (400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported", "validation"),
        (400, "Your request was rejected as a result of our safety system", "content_policy"),
        (400, "litellm.ContentPolicyViolationError: blocked", "content_policy"),
        (404, "The model `gpt-9` does not exist or you do not have access to it.", "unknown_model"),
        (404, "no route POST /chat/completions", "not_found"),
        (401, "Incorrect API key provided: sk-abc", "auth"),
        (403, "forbidden", "auth"),
        (413, "payload too large", "client_error"),
    ],
)
def test_permanent_errors_have_a_kind(status, message, kind):
    error = status_error(status, message)
    assert isinstance(error, LLMError) and error.kind == kind and error.permanent
    assert "sk-abc" not in str(error)
    if kind in ("auth", "unknown_model", "not_found"):
        assert error.fix  # what to change


@pytest.mark.parametrize(
    ("status", "message"),
    [(500, "Internal Server Error"), (502, "bad gateway"), (503, "overloaded"), (429, "slow down"), (408, "")],
)
def test_transient_errors_are_retried(status, message):
    assert isinstance(status_error(status, message), RetryableLLMError)


def test_a_500_that_is_a_rejected_request_is_not_retried(server, make_client):
    server.push(Reply(status=500, body={"error": {"message": LLAMACPP_500, "type": "internal_server_error"}}))
    client = make_client(fast_settings(server, max_retries=5))
    with pytest.raises(LLMError) as exc:
        client.complete_sync(client_request())
    assert len(server.requests) == 1 and exc.value.kind == "validation" and exc.value.permanent
    assert str(exc.value).startswith("openai/test: HTTP 500")


def test_retries_spent_on_transient_errors_are_not_permanent(server, make_client):
    server.push(*[Reply.server_error(503)] * 3)
    client = make_client(fast_settings(server, max_retries=2))
    with pytest.raises(LLMError, match="gave up after 3 attempts") as exc:
        client.complete_sync(client_request())
    assert exc.value.kind == "exhausted" and not exc.value.permanent


def test_the_lean_transport_classifies_the_same(server, make_client):
    server.push(Reply(status=500, body={"error": {"message": LLAMACPP_500}}))
    client = make_client(fast_settings(server, transport="lean", max_retries=5))
    with pytest.raises(LLMError) as exc:
        client.complete_sync(client_request())
    assert len(server.requests) == 1 and exc.value.kind == "validation"


def client_request():
    from assay.llm import ChatRequest

    return ChatRequest.prompt("hello")
