"""Which runtime serves `local/...` (llama.cpp or transformers), and the schema rewrites the llama.cpp
runtimes need (portable regex patterns; the per-string cap). The llama.cpp runtime itself runs in
`make test-integration` (it is compiled, not installed by `make test`)."""

from __future__ import annotations

import re

import pytest

import assay.llm.local as local
from assay.errors import ConfigError
from assay.llm import LLMError
from assay.llm.backends.openai_compat import request_body
from assay.llm.local.llamacpp import LlamaCppBackend, cap_strings
from assay.llm.structured import portable_schema
from assay.llm.types import ChatRequest


def test_auto_picks_llamacpp_for_a_gguf_only_where_it_is_installed(monkeypatch, tmp_path):
    monkeypatch.delenv(local.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(local, "llamacpp_available", lambda: True)
    assert local.runtime_for("smollm2") == "llamacpp"  # plain text: llama.cpp (measured 2x faster)
    assert local.runtime_for("smollm2", guided=True) == "transformers"  # a schema: llguidance (measured)
    assert local.runtime_for("smollm2", "llamacpp", guided=True) == "llamacpp"  # unless asked
    hf = tmp_path / "merged"  # a merged fine-tune (an HF directory): transformers whatever is installed
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    assert local.runtime_for(str(hf)) == "transformers"
    monkeypatch.setattr(local, "llamacpp_available", lambda: False)
    assert local.runtime_for("smollm2") == "transformers"
    with pytest.raises(LLMError, match=r"pip install 'assay\[llamacpp\]'"):
        local.runtime_for("smollm2", "llamacpp")


def test_the_environment_variable_and_the_setting_choose(monkeypatch):
    monkeypatch.setattr(local, "llamacpp_available", lambda: True)
    monkeypatch.setenv(local.RUNTIME_ENV, "transformers")
    assert local.runtime_for("smollm2") == "transformers"
    assert local.runtime_for("smollm2", "llamacpp") == "llamacpp"  # the setting wins over the variable
    monkeypatch.setenv(local.RUNTIME_ENV, "vulkan")
    with pytest.raises(ConfigError, match="ASSAY_LOCAL_BACKEND must be llamacpp, transformers or auto"):
        local.runtime_for("smollm2")


def test_llamacpp_refuses_a_hugging_face_directory_in_one_line(tmp_path):
    with pytest.raises(LLMError, match="loads a GGUF file.*local_backend=transformers"):
        LlamaCppBackend(str(tmp_path))


def test_patterns_lose_the_shorthands_llamacpp_cannot_parse():
    title = r"^\S+( \S+){0,5}$"
    schema = {"type": "object", "properties": {"title": {"type": "string", "pattern": title}}}
    portable = portable_schema(schema)["properties"]["title"]["pattern"]
    assert "\\S" not in portable
    for text in ("Slow Rain", "A quiet night over the sea", "x"):
        assert bool(re.fullmatch(title, text)) == bool(re.fullmatch(portable, text))
    assert not re.fullmatch(portable, 'say "hi"')  # no quote: the converter would not escape it
    assert portable_schema({"pattern": r"[\s,]+\d\w"})["pattern"] == "[ \\t\\n\\r,]+[0-9][A-Za-z0-9_]"
    body = request_body(ChatRequest.prompt("x", json_schema=schema, structured="json_object_schema"))
    assert body["response_format"]["schema"]["properties"]["title"]["pattern"] == portable
    assert schema["properties"]["title"]["pattern"] == title  # the caller's schema is not changed


def test_small_integer_ranges_become_enums():
    schema = {
        "type": "object",
        "properties": {
            "octave": {"type": "integer", "minimum": 1, "maximum": 8},
            "bpm": {"type": "integer", "minimum": 20, "maximum": 300},  # too wide: left as it is
            "gain": {"type": "number", "minimum": 0, "maximum": 1},
        },
    }
    out = portable_schema(schema)["properties"]
    assert out["octave"]["enum"] == [1, 2, 3, 4, 5, 6, 7, 8] and "enum" not in out["bpm"]
    assert "enum" not in out["gain"]


def test_the_client_marks_the_requests_llamacpp_serves(monkeypatch):
    monkeypatch.setattr(local, "llamacpp_available", lambda: True)
    monkeypatch.delenv(local.RUNTIME_ENV, raising=False)
    from assay.llm import LLMClient, LLMSettings

    client = LLMClient(LLMSettings(model="local/smollm2"))
    try:
        assert client._runtime_extra(guided=False) == {local.RUNTIME_KEY: "llamacpp"}
        assert client._runtime_extra(guided=True) == {}  # transformers: no mark
    finally:
        client.close()


def test_free_strings_get_the_per_string_cap():
    schema = {
        "type": "object",
        "properties": {
            "thinking": {"type": "string"},
            "title": {"type": "string", "maxLength": 40},
            "mood": {"type": "string", "enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 300}},
        },
    }
    capped = cap_strings(schema, 256)["properties"]
    assert capped["thinking"]["maxLength"] == 256 and capped["title"]["maxLength"] == 40
    assert "maxLength" not in capped["mood"] and capped["tags"]["items"]["maxLength"] == 300
    assert cap_strings(schema, None) is schema


def test_a_llamacpp_server_that_cannot_start_says_why_and_leaves_no_process(tmp_path):
    from assay.llm.testserver import LlamaCppServer

    missing = tmp_path / "no-such-model.gguf"  # the server exits whether or not llama_cpp is installed
    server = LlamaCppServer(log=tmp_path / "server.log", model=missing, timeout_s=60)
    with pytest.raises(RuntimeError, match=r"(?s)the llama.cpp server exited \(\d+\): .*(llama_cpp|no-such-model)"):
        server.start()
    assert server.proc.poll() is not None
    server.stop()  # a no-op on a process that has exited
