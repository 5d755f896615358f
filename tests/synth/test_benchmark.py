"""`assay synth benchmark` on real code paths: a scripted OpenAI-compatible server (valid, malformed
and schema-invalid answers chosen by the vibe), dataset columns, a retrieval map, random configs,
the JSON it writes, and the CLI's one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from assay.cli.main import main
from assay.errors import ConfigError, DataError
from assay.llm.testserver import Reply, ScriptedServer
from assay.llm.types import LLMError
from assay.synth.benchmark import (
    BenchmarkConfig,
    SynthBenchmarkConfig,
    build_sources,
    run_benchmark,
    split_label,
)

PAYLOAD = json.loads((Path(__file__).parents[1] / "music" / "data" / "payload_valid.json").read_text())
DURATION = 1.0  # seconds rendered per config: enough for the scorer, fast
# vibe -> what the scripted model answers (and what the dataset column holds)
VIBES = {
    "a1": "slow dark rain over a quiet harbour",
    "a2": "a fast bright festival with drums",
    "a3": "an eerie empty chapel at midnight",
    "a4": "a warm lazy summer afternoon",
}
ANSWERS = {"a1": "valid", "a2": "malformed", "a3": "invalid", "a4": "valid"}


def payload(tempo: str = "slow") -> dict:
    out = json.loads(json.dumps(PAYLOAD))
    out["config"]["tempo"] = tempo
    return out


def answer_for(vibe: str) -> str:
    row_id = next(k for k, v in VIBES.items() if v == vibe)
    kind = ANSWERS[row_id]
    if kind == "malformed":
        return '{"thinking": "oops", "title": "Broken'
    return json.dumps(payload("warp" if kind == "invalid" else "slow"))


def respond(body: dict) -> Reply:
    vibe = re.fullmatch(r"<vibe>(.*)</vibe>", body["messages"][-1]["content"]).group(1)
    return Reply(content=answer_for(vibe))


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(responder=respond) as srv:
        yield srv


@pytest.fixture
def test_file(tmp_path):
    dataset = {"a1": payload(), "a2": payload("fast"), "a3": None, "a4": payload("warp")}
    path = tmp_path / "TEST.jsonl"
    rows = [{"row_id": k, "split": "TEST", "vibe_original": v, "config_payload": dataset[k]} for k, v in VIBES.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))  # sorted by the benchmark
    return path


def config(tmp_path, test_file, server, **benchmark) -> SynthBenchmarkConfig:
    cfg = SynthBenchmarkConfig()
    cfg.llm.api_base = server.base_url
    cfg.llm.backoff_start_s = 0.01
    cfg.score.audio_duration = DURATION
    cfg.benchmark = BenchmarkConfig(input=test_file, out=tmp_path / "bench", **benchmark)
    return cfg


def read_rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_model_validity_rates_are_exact_and_the_switch_reaches_the_request(tmp_path, test_file, server):
    start = len(server.requests)
    cfg = config(tmp_path, test_file, server, models=["teacher=openai/scripted"], free_models=["free=openai/scripted"])
    result = run_benchmark(cfg, progress=False)
    for label in ("teacher", "free"):
        s = result["sources"][label]
        assert s["rows"] == 4 and s["request_errors"] == 0
        # a1, a4 valid; a2 malformed JSON; a3 tempo "warp": parses, palettes fine, schema fails
        assert (s["format_valid_rate"], s["schema_valid_rate"], s["palette_valid_rate"]) == (0.75, 0.5, 0.75)
        assert s["valid_rate"] == 0.5 and s["success_rate"] == 0.5 and s["audio_n"] == 2
        assert -1 <= s["audio_mean"] <= 1 and s["audio_se"] >= 0 and s["seconds_per_config"] > 0
    assert result["sources"]["teacher"]["guided"] is True and result["sources"]["free"]["guided"] is False
    bodies = [r.body for r in server.requests[start:]]
    assert len(bodies) == 8
    with_schema = [b for b in bodies if "response_format" in b]
    assert len(with_schema) == 4  # guided: the schema goes with the request; free: the same prompt without it
    assert {json.dumps(b["messages"]) for b in with_schema} == {
        json.dumps(b["messages"]) for b in bodies if "response_format" not in b
    }

    rows = read_rows(tmp_path / "bench" / "benchmark_rows.jsonl")
    assert len(rows) == 8 and [r["row_id"] for r in rows[:4]] == ["a1", "a2", "a3", "a4"]
    by_id = {r["row_id"]: r for r in rows if r["source"] == "teacher"}
    assert by_id["a2"]["format_valid"] == 0 and by_id["a2"]["reward"] == pytest.approx(0.0, abs=1e-9)
    assert by_id["a3"]["schema_valid"] == 0 and "tempo" in by_id["a3"]["error"] and by_id["a3"]["audio_score"] is None
    assert by_id["a3"]["reward"] > 0.2 + 0.3 * 0.9  # format credit and partial schema credit (1 error of 38)
    assert by_id["a1"]["success"] and by_id["a1"]["audio_description"] and by_id["a1"]["config_payload"]
    written = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert written["sources"]["teacher"] == result["sources"]["teacher"]
    assert written["rows"] == 4 and written["audio_duration_s"] == DURATION
    assert written["settings"]["llm"]["guided"] is True


def test_dataset_field_random_and_retrieval_sources(tmp_path, test_file, server):
    from assay.music.retrieval import build_map

    scored = tmp_path / "scored"
    scored.mkdir()
    known = {"SFT-Train": "soft rain on the harbour at night", "SFT-Val": "a loud bright carnival", "GRPO": "a hymn"}
    for split, vibe in known.items():
        row = {"row_id": f"m/{split}", "vibe_original": vibe, "config_payload": payload(), "score": {"audio": 0.1}}
        (scored / f"{split}.jsonl").write_text(json.dumps(row | {"scorers": ["audio"]}) + "\n")
    build_map(scored, tmp_path / "map")
    cfg = config(
        tmp_path,
        test_file,
        server,
        dataset_fields=["synthetic=config_payload"],
        random=True,
        retrieval=[str(tmp_path / "map")],
    )
    result = run_benchmark(cfg, progress=False)
    assert list(result["sources"]) == ["synthetic", "random", "retrieval"]
    synthetic = result["sources"]["synthetic"]
    # a1, a2 valid; a3 has none (format 0); a4's tempo is not an allowed label
    assert (synthetic["format_valid_rate"], synthetic["schema_valid_rate"], synthetic["palette_valid_rate"]) == (
        0.75,
        0.5,
        0.75,
    )
    assert synthetic["success_rate"] == 0.5 and synthetic["seconds_per_config"] == 0
    for label in ("random", "retrieval"):
        assert result["sources"][label]["valid_rate"] == 1.0 and result["sources"][label]["success_rate"] == 1.0
    rows = [r for r in read_rows(tmp_path / "bench" / "benchmark_rows.jsonl") if r["source"] == "retrieval"]
    assert next(r for r in rows if r["row_id"] == "a1")["neighbour_row_id"] == "m/SFT-Train"
    assert all(0 < r["neighbour_similarity"] <= 1.0001 for r in rows)

    # a map that holds an input row would leak the answer: refused before any work
    (scored / "SFT-Val.jsonl").write_text(
        json.dumps({"row_id": "a2", "vibe_original": VIBES["a2"], "config_payload": payload()}) + "\n"
    )
    build_map(scored, tmp_path / "leaky")
    with pytest.raises(DataError, match="holds input rows"):
        run_benchmark(config(tmp_path, test_file, server, retrieval=[str(tmp_path / "leaky")]), progress=False)


def test_specs_labels_and_source_errors():
    assert split_label("base=local/smollm2") == ("local/smollm2", "base")
    assert split_label("synthetic=config_payload") == ("config_payload", "synthetic")
    assert split_label("runs/s/map") == ("runs/s/map", None)
    assert split_label("finetuned=local/runs/sft/merged") == ("local/runs/sft/merged", "finetuned")
    # model ids with colons are never cut (the old MODEL:LABEL form broke these)
    assert split_label("ollama/llama3:8b") == ("ollama/llama3:8b", None)
    assert split_label("ft:gpt-4o-mini:org::abc") == ("ft:gpt-4o-mini:org::abc", None)
    assert split_label("teacher=openrouter/m:free") == ("openrouter/m:free", "teacher")
    sources = build_sources(BenchmarkConfig(models=["local/smollm2"], free_models=["local/smollm2"]), guided=True)
    assert [(s.label, s.guided) for s in sources] == [("local/smollm2", True), ("local/smollm2 (free)", False)]
    assert build_sources(BenchmarkConfig(models=["local/smollm2"]), guided=False)[0].guided is False
    with pytest.raises(ConfigError, match="nothing to benchmark"):
        build_sources(BenchmarkConfig(), guided=True)
    with pytest.raises(ConfigError, match="two sources are labelled 'x'"):
        build_sources(BenchmarkConfig(models=["x=openai/a"], dataset_fields=["x=config_payload"]), guided=True)


def run_cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_cli_config_file_table_and_one_line_errors(tmp_path, test_file, server, capsys):
    toml = tmp_path / "bench.toml"
    toml.write_text(
        f'[llm]\napi_base = "{server.base_url}"\n[score]\naudio_duration = {DURATION}\n'
        f'[benchmark]\ninput = "{test_file}"\nout = "{tmp_path / "cli"}"\n'
    )
    code, out, err = run_cli(
        ["synth", "benchmark", "-c", str(toml), "--model", "teacher=openai/scripted", "--unconstrained"]
        + ["--dataset-field", "synthetic=config_payload", "--limit", "2", "--set", "benchmark.random=true"],
        capsys,
    )
    assert code == 0, err
    assert "teacher" in out and "synthetic" in out and "random" in out and "benchmark.json" in out
    result = json.loads((tmp_path / "cli" / "benchmark.json").read_text())
    assert result["rows"] == 2 and result["sources"]["teacher"]["guided"] is False  # --unconstrained
    assert result["sources"]["teacher"]["format_valid_rate"] == 0.5  # a1 valid, a2 malformed

    for args, message in [
        (["--input", str(test_file)], "error: nothing to benchmark"),
        (["--input", str(tmp_path / "nope.jsonl"), "--random"], "error: input not found"),
        (["--input", str(test_file), "--dataset-field", "no_such_column"], "no input row has a value in field"),
        (["--input", str(test_file), "--retrieval", str(tmp_path)], "is not a retrieval map"),
        (["--input", str(test_file), "--random", "--set", "benchmark.lmit=3"], "benchmark.lmit"),
        (["--input", str(test_file), "--model", "a=openai/x", "--model", "a=openai/y"], "labelled 'a'"),
    ]:
        code, _, err = run_cli(["synth", "benchmark", *args, "--out", str(tmp_path / "bad")], capsys)
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists()


def test_a_model_that_fails_every_request_is_one_error(tmp_path, test_file, capsys):
    with ScriptedServer(replies=[Reply(status=400)] * 4) as bad:
        cfg = config(tmp_path, test_file, bad, models=["openai/broken"])
        cfg.llm.max_retries = 0
        with pytest.raises(LLMError, match="every request failed") as exc:
            run_benchmark(cfg, progress=False)
    assert "\n" not in str(exc.value)
