"""A run stops early, with one line naming the cause and the fix, when rows keep failing with the
same error that no retry can fix (a request shape the endpoint rejects, an unknown model, a bad key),
instead of failing every row; and the structured-output mode a step used is in its run_config.json
and summary."""

from __future__ import annotations

import json

import pytest

from assay.llm import LLMError
from assay.llm.testserver import ScriptedServer
from assay.pipeline.runner import PipelineAborted, RunnerSettings, run_rows
from tests.conftest import one_error, run_cli
from tests.synth.synth_server import responder

ROWS = [{"row_id": f"r{i}"} for i in range(20)]


def settings(**kw) -> RunnerSettings:
    return RunnerSettings(progress=False, concurrency=1, **kw)


def test_three_identical_permanent_errors_in_a_row_stop_the_run(tmp_path):
    seen = []

    async def process(row):
        seen.append(row["row_id"])
        if row["row_id"] == "r0":
            return {"ok": True}
        raise LLMError("HTTP 400: response_format is not supported", kind="validation", fix="set llm.structured=auto")

    out = tmp_path / "out.jsonl"
    with pytest.raises(PipelineAborted) as exc:
        run_rows(ROWS, process, out, settings(), "vibes")
    message = str(exc.value)
    assert seen == ["r0", "r1", "r2", "r3"]  # the written row, then three failures: no more requests
    assert message.startswith("vibes: set llm.structured=auto. Stopped after 3 rows in a row")
    assert "response_format is not supported" in message and "resumable with --resume" in message
    assert [json.loads(x)["row_id"] for x in out.read_text().splitlines()] == ["r0"]  # kept


@pytest.mark.parametrize(
    "error",
    [
        lambda rid: LLMError(f"prompt of row {rid} too long", kind="validation"),  # not identical
        lambda rid: LLMError("gave up after 7 attempts", kind="exhausted"),  # not permanent
        lambda rid: ValueError("no valid JSON"),  # not an LLM error
    ],
)
def test_other_failures_do_not_stop_the_run_early(tmp_path, error):
    async def process(row):
        if int(row["row_id"][1:]) % 2:
            raise error(row["row_id"])
        return {"ok": True}

    stats = run_rows(ROWS, process, tmp_path / "out.jsonl", settings(max_error_rate=0.9), "rows")
    assert stats.written == 10 and stats.failed == 10


def test_a_success_between_failures_resets_the_count_and_zero_turns_it_off(tmp_path):
    async def alternating(row):
        if int(row["row_id"][1:]) % 3 == 2:
            return {"ok": True}
        raise LLMError("unknown model", kind="unknown_model")

    stats = run_rows(ROWS, alternating, tmp_path / "a.jsonl", settings(max_error_rate=1.0), "rows")
    assert stats.failed == 14  # two in a row at most, never three

    async def always(row):
        raise LLMError("unknown model", kind="unknown_model")

    stats = run_rows(ROWS, always, tmp_path / "b.jsonl", settings(max_error_rate=1.0, stop_after_permanent=0), "rows")
    assert stats.failed == 20


@pytest.fixture
def texts(tmp_path, capsys):
    out = tmp_path / "texts"
    code, _, err = run_cli(capsys, "synth", "ingest", "--out", out, "--source", "kjv", "--per-source", "12")
    assert code == 0, err
    return out


def test_synth_vibes_against_an_endpoint_that_rejects_the_mode_stops_with_the_fix(tmp_path, capsys, texts):
    with ScriptedServer(responder=responder(), formats={"json_object_schema"}) as server:
        llm = ["--model", "openai/smollm2", "--api-base", server.base_url, "--set", "runner.progress=false"]
        out = tmp_path / "vibes"
        code, _, err = run_cli(
            capsys, "synth", "vibes", "--input-dir", texts, "--out", out, *llm, "--structured", "json_schema"
        )
        line = one_error(code, err)
        assert "this endpoint rejects llm.structured=json_schema; set llm.structured=auto" in line
        assert "Stopped after 3 rows in a row" in line and "Input should be 'text' or 'json_object'" in line
        # no retries, and no rows beyond those in flight (8) and the two started after the first two failures
        assert len(server.requests) <= 8 + 2 < 12
        assert json.loads((out / "run_config.json").read_text())["config"]["llm"]["structured_mode"] == "json_schema"

        # auto: one probe finds the mode, then every row is made in it
        server.reset()
        code, stdout, err = run_cli(capsys, "synth", "vibes", "--input-dir", texts, "--out", out, *llm, "--overwrite")
        assert code == 0, err
        summary = json.loads(stdout.rsplit("output in", 1)[0])
        assert summary["run"]["written"] == 12 and summary["structured_mode"] == "json_object_schema"
        run_config = json.loads((out / "run_config.json").read_text())
        assert run_config["config"]["llm"]["structured"] == "auto"
        assert run_config["config"]["llm"]["structured_mode"] == "json_object_schema"
        shapes = [r.body["response_format"]["type"] for r in server.requests]
        assert shapes == ["json_schema"] + ["json_object"] * 13  # the probe's two tries, then 12 rows
