"""API keys: from the environment or an env file, sent to the server, never logged or written."""

from __future__ import annotations

import json
import logging

import pytest

from assay.errors import ConfigError
from assay.llm import ChatRequest, LLMError, LLMSettings, read_env_file, resolve_api_key
from assay.llm.testserver import Reply
from assay.llm.types import known_secrets, redact
from tests.llm.conftest import fast_settings

SECRET = "sk-test-0123456789abcdef-SECRET"


def test_env_file_format(tmp_path):
    path = tmp_path / ".env"
    path.write_text(
        "# keys\n\nexport A_KEY=plain\nB_KEY = 'single quoted # not a comment'\n"
        'C_KEY="double"\nD_KEY=value # trailing comment\nE_KEY=\n'
    )
    assert read_env_file(path) == {
        "A_KEY": "plain",
        "B_KEY": "single quoted # not a comment",
        "C_KEY": "double",
        "D_KEY": "value",
        "E_KEY": "",
    }


def test_env_file_errors_never_show_values(tmp_path):
    with pytest.raises(ConfigError, match="env file not found"):
        read_env_file(tmp_path / "missing.env")
    path = tmp_path / ".env"
    path.write_text(f"GOOD=1\n{SECRET}\n")
    with pytest.raises(ConfigError) as err:
        read_env_file(path)
    assert "line 2 is not KEY=VALUE" in str(err.value) and SECRET not in str(err.value)


def test_key_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ASSAY_TEST_KEY", raising=False)
    env = tmp_path / ".env"
    env.write_text(f"ASSAY_TEST_KEY={SECRET}\n")
    # named variable, from the env file (which wins over the environment)
    monkeypatch.setenv("ASSAY_TEST_KEY", "from-environment")
    assert resolve_api_key(LLMSettings(model="openai/x", api_key_env="ASSAY_TEST_KEY", env_file=env)) == SECRET
    assert resolve_api_key(LLMSettings(model="openai/x", api_key_env="ASSAY_TEST_KEY")) == "from-environment"
    # a named variable that is missing: the error names it
    with pytest.raises(LLMError, match="environment variable NOPE_KEY .* is not set"):
        resolve_api_key(LLMSettings(model="openai/x", api_key_env="NOPE_KEY", env_file=env))
    # the vendor's default variable, needed without an api_base
    with pytest.raises(LLMError, match="set OPENAI_API_KEY or name a variable with --api-key-env"):
        resolve_api_key(LLMSettings(model="openai/gpt-4o-mini"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert resolve_api_key(LLMSettings(model="openai/gpt-4o-mini")) == SECRET
    # ... but never sent to another endpoint unless named
    assert resolve_api_key(LLMSettings(model="openai/x", api_base="http://127.0.0.1:1/v1")) is None
    assert resolve_api_key(LLMSettings(model="local/smollm2", api_key_env="NOPE_KEY")) is None


def test_public_dict_has_no_secrets():
    settings = LLMSettings(
        model="openai/x", api_base=f"https://user:{SECRET}@proxy.example:8443/v1?key={SECRET}", api_key_env="K"
    )
    public = settings.public_dict()
    assert SECRET not in json.dumps(public)
    assert public["api_base"] == "https://proxy.example:8443/v1" and public["api_key_env"] == "K"


@pytest.mark.parametrize("transport", ["sdk", "lean"])
def test_key_reaches_the_server_and_nothing_else(server, make_client, tmp_path, monkeypatch, caplog, capsys, transport):
    monkeypatch.delenv("ASSAY_TEST_KEY", raising=False)
    env = tmp_path / ".env"
    env.write_text(f"ASSAY_TEST_KEY={SECRET}\n")
    caplog.set_level(logging.DEBUG)  # every logger, the SDKs' and httpx's included
    settings = fast_settings(
        server, transport=transport, api_key_env="ASSAY_TEST_KEY", env_file=env, cache=tmp_path / "c.sqlite"
    )
    client = make_client(settings)
    client.complete_sync(ChatRequest.prompt("hello"))
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"

    errors = []
    # a server that echoes the key in its error text (some do), retryable and not, and a 401
    server.push(Reply(status=400, body={"error": {"message": f"bad request from key {SECRET}"}}))
    server.push(Reply(status=401, body={"error": {"message": f"Incorrect API key provided: {SECRET}"}}))
    server.responder = lambda body: Reply(status=500, body={"error": {"message": f"boom {SECRET}"}})
    for prompt in ("a", "b", "c"):
        with pytest.raises(LLMError) as err:
            client.complete_sync(ChatRequest.prompt(prompt).replace(extra={"_n": prompt}))
        errors.append(str(err.value))
    assert "HTTP 400" in errors[0] and "***" in errors[0]
    assert "HTTP 401: the server rejected the API key" in errors[1]
    assert "HTTP 500" in errors[2]
    client.close()

    out = capsys.readouterr()
    written = [
        *errors,
        caplog.text,
        out.out,
        out.err,
        json.dumps(settings.public_dict()),
        json.dumps(client.usage.summary()),
        repr(settings),
        (tmp_path / "c.sqlite").read_bytes().decode("latin-1"),
    ]
    assert caplog.records  # the check below looked at real log output
    for text in written:
        assert SECRET not in text


OTHER = "sk-other-provider-9876543210-SECRET"  # a provider key LiteLLM may have read by itself
FROM_FILE = "AIza-env-file-key-0123456789-SECRET"


def test_redact_and_known_secrets(monkeypatch):
    monkeypatch.setenv("ASSAY_TEST_API_KEY", OTHER)
    monkeypatch.setenv("ASSAY_TEST_SHORT_TOKEN", "abc")  # too short to be a key: left alone
    monkeypatch.setenv("ASSAY_TEST_SETTING", "not-a-secret-value")  # not named like a key
    secrets = known_secrets(SECRET, {"GEMINI_API_KEY": FROM_FILE, "REGION": "europe-west-4"})
    assert {SECRET, OTHER, FROM_FILE} <= set(secrets)
    assert not {"abc", "not-a-secret-value", "europe-west-4"} & set(secrets)
    text = f"url ?key={FROM_FILE}&k={SECRET} auth {OTHER} abc"
    assert redact(text, secrets) == "url ?key=***&k=*** auth *** abc"
    assert redact(text, SECRET, None) == f"url ?key={FROM_FILE}&k=*** auth {OTHER} abc"
    assert redact("ab-secret-xy", "secret", "ab-secret-xy") == "***"  # the longer one first


def test_litellm_errors_and_logs_never_show_keys_from_the_environment_or_the_env_file(
    server, make_client, tmp_path, monkeypatch, caplog
):
    import asyncio

    from assay.llm.backends.litellm import LiteLLMBackend

    monkeypatch.setenv("ASSAY_OTHER_API_KEY", OTHER)
    env = tmp_path / ".env"
    env.write_text(f"GEMINI_API_KEY={FROM_FILE}\n")
    caplog.set_level(logging.DEBUG)
    # through the client: LiteLLM's error text quotes keys it was never given by us
    client = make_client(fast_settings(server, model="litellm/openai/scripted", env_file=env, max_retries=0))
    server.push(Reply(status=400, body={"error": {"message": f"bad: {OTHER} / {FROM_FILE}"}}))
    with pytest.raises(LLMError) as err:
        client.complete_sync(ChatRequest.prompt("x"))
    assert "HTTP 400" in str(err.value) and "***" in str(err.value)
    # the backend itself, on an exception of LiteLLM's own (not an HTTP error)
    backend = LiteLLMBackend(None, None, 5.0, {"GEMINI_API_KEY": FROM_FILE})

    async def boom(**kwargs):
        raise RuntimeError(f"request to https://x/v1?key={FROM_FILE} failed; tried {OTHER}")

    monkeypatch.setattr(backend._litellm, "acompletion", boom)
    with pytest.raises(LLMError) as raw:
        asyncio.run(backend.complete(ChatRequest.prompt("x", model="gemini/gemini-2.0-flash")))
    assert str(raw.value) == "RuntimeError: request to https://x/v1?key=*** failed; tried ***"
    # LiteLLM's loggers are filtered too (also for keys its own patterns do not know)
    plain = "plain0123456789plain"
    monkeypatch.setenv("ASSAY_PLAIN_TOKEN", plain)
    try:
        raise ValueError(f"inner {FROM_FILE} {plain}")
    except ValueError:
        logging.getLogger("LiteLLM").exception("calling with %s", plain)
    assert "calling with ***" in caplog.text and "inner *** ***" in caplog.text and plain not in caplog.text
    for text in (str(err.value), str(raw.value), caplog.text):
        assert OTHER not in text and FROM_FILE not in text
