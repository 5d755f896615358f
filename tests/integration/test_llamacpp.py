"""assay against a real third-party OpenAI-compatible server: llama-cpp-python's, serving SmolLM2.

That server takes `response_format` {"type": "json_object", "schema": ...} and rejects json_schema
with a 500 whose body is a validation error. `llm.structured = auto` must find json_object_schema,
without retrying the rejection; the pipelines must then make every row, directly (openai SDK) and
through LiteLLM. Then the local model itself on llama.cpp (`local/smollm2` with the llamacpp extra)."""

from __future__ import annotations

import json

import pytest

from assay.llm import ChatRequest, LLMClient, LLMSettings
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

MODELS = ["openai/smollm2", "litellm/openai/smollm2"]  # the openai SDK, and LiteLLM's openai provider


@pytest.mark.parametrize("model", MODELS)
def test_llm_check_reports_the_modes_the_server_takes(llamacpp_server, capsys, model):
    code, out, err = run_cli(capsys, "llm", "check", "--model", model, "--api-base", llamacpp_server, "--json")
    assert code == 0, err
    report = json.loads(out)
    modes = {m["mode"]: m["status"] for m in report["modes"]}
    assert modes["json_schema"] == "rejected" and modes["json_object_schema"] == "works"
    assert report["auto_mode"] == "json_object_schema"
    assert report["models"] == ["smollm2"] and report["usage_reported"] is True
    assert report["tokens_per_s"] > 0 and report["first_token_s"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_auto_falls_back_without_retrying_the_rejection(llamacpp_server, tmp_path, model):
    settings = LLMSettings(model=model, api_base=llamacpp_server, cache=tmp_path / "llm.sqlite", max_retries=4)
    schema = {
        "type": "object",
        "properties": {"mood": {"type": "string", "enum": ["calm", "stormy"]}},
        "required": ["mood"],
    }
    request = ChatRequest.prompt("Describe the mood of a storm at sea.", json_schema=schema, max_tokens=32)
    client = LLMClient(settings)
    try:
        result = client.complete_json_sync(request)
        assert result.ok and result.value["mood"] in ("calm", "stormy")
        assert client.known_mode() == "json_object_schema"
        usage = client.usage.summary()
        assert usage["retries"] == 0 and usage["errors"] == 1  # the one rejected json_schema try
    finally:
        client.close()
    again = LLMClient(settings)  # remembered in the cache file: no probe
    try:
        assert again.known_mode() == "json_object_schema"
    finally:
        again.close()


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    from assay.cli.main import main

    out = tmp_path_factory.mktemp("texts")
    with pytest.raises(SystemExit) as exc:
        main(
            ["synth", "ingest", "-c", "synth_local", "--out", str(out), "--source", "shakespeare", "--per-source", "5"]
        )
    assert exc.value.code == 0
    return out


@pytest.mark.parametrize("model", MODELS)
def test_synth_vibes_configs_and_correct_run_make_every_row(llamacpp_server, texts, tmp_path, capsys, model):
    llm = [
        "--model", model, "--api-base", llamacpp_server, "-c", "synth_local",
        "--set", f"llm.cache={tmp_path / 'llm.sqlite'}", "--set", "runner.progress=false",
    ]  # fmt: skip
    code, out, err = run_cli(capsys, "synth", "vibes", "--input-dir", texts, "--out", tmp_path / "vibes", *llm)
    assert code == 0, err
    vibes = json.loads(out.rsplit("output in", 1)[0])
    assert vibes["run"]["written"] == 5 and vibes["run"]["failed"] == 0, vibes["run"]
    assert vibes["structured_mode"] == "json_object_schema"

    code, out, err = run_cli(
        capsys, "synth", "configs", "--input-dir", tmp_path / "vibes", "--out", tmp_path / "configs", *llm,
        "--num-candidates", "1",
    )  # fmt: skip
    assert code == 0, err
    configs = json.loads(out.rsplit("output in", 1)[0])
    runs = configs["splits"].values()
    assert sum(r["written"] for r in runs) == 5 and sum(r["failed"] for r in runs) == 0, configs["splits"]
    assert configs["structured_mode"] == "json_object_schema"
    run_config = json.loads((tmp_path / "configs" / "run_config.json").read_text())
    assert run_config["config"]["llm"]["structured_mode"] == "json_object_schema"

    code, out, err = run_cli(
        capsys, "correct", "run", "--model", model, "--api-base", llamacpp_server, "--limit", "5",
        "--out", tmp_path / "correct", "--set", "runner.progress=false",
    )  # fmt: skip
    assert code == 0, err
    traces = (tmp_path / "correct" / "traces.jsonl").read_text().splitlines()
    assert len(traces) == 5
    assert not (tmp_path / "correct" / "traces.errors.jsonl").exists()


def test_the_local_model_on_llamacpp(llamacpp_runtime, tmp_path):
    from assay.llm.local import runtime_for

    assert runtime_for("smollm2") == runtime_for("smollm2", guided=True) == "llamacpp"  # as the fixture asks
    settings = LLMSettings(model="local/smollm2", cache=tmp_path / "llm.sqlite")
    schema = {
        "type": "object",
        "properties": {
            "colour": {"type": "string", "enum": ["red", "blue"]},
            "shade": {"type": "integer", "minimum": 1, "maximum": 3},
        },
        "required": ["colour", "shade"],
    }
    with LLMClient(settings) as client:
        result = client.complete_json_sync(ChatRequest.prompt("Name a colour.", json_schema=schema, max_tokens=24))
        assert result.ok and result.value["colour"] in ("red", "blue") and result.value["shade"] in (1, 2, 3)
        hello = ChatRequest.prompt("Say hello.", max_tokens=8, seed=1, temperature=0.8)
        first = client.complete_sync(hello)
    with LLMClient(settings.model_copy(update={"cache": None})) as client:
        again = client.complete_sync(hello)
    assert first.text == again.text and 0 < first.usage.completion_tokens <= 8  # seeded: the same text
    # the same answer whatever was asked before (the shared system turn's KV state is reused, the rest
    # of the prompt evaluated afresh)
    with LLMClient(settings.model_copy(update={"cache": None})) as client:
        answers = [
            client.complete_sync(
                ChatRequest.prompt(f"Say {q}.", system="You are terse.", max_tokens=12, seed=2, temperature=0.9)
            ).text
            for q in "ABA"
        ]
    assert answers[0] == answers[2] != answers[1]


def test_auto_runs_plain_text_on_llamacpp_and_schemas_on_transformers(monkeypatch, tmp_path):
    from assay.llm.cache import ResponseCache, cache_key

    monkeypatch.setenv("ASSAY_LOCAL_BACKEND", "auto")
    cache = tmp_path / "llm.sqlite"
    with LLMClient(LLMSettings(model="local/smollm2", cache=cache)) as client:
        plain = client.complete_sync(ChatRequest.prompt("Say hello.", max_tokens=6, seed=1))
        assert plain.usage.completion_tokens > 0
    marked = ChatRequest.prompt("Say hello.", max_tokens=6, seed=1, model="local/smollm2")
    marked = marked.replace(extra={"_runtime": "llamacpp"})
    stored = ResponseCache(cache)
    try:
        assert stored.get(cache_key(marked, "local")) is not None  # keyed as a llama.cpp answer
    finally:
        stored.close()
