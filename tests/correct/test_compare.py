"""`assay correct compare`: fixed and learned policies on the same questions in one run, against the
scripted server (six real GSM8K questions with known right/wrong answer sequences)."""

from __future__ import annotations

import json

import pytest

from assay.llm.testserver import ScriptedServer
from tests.correct.cli import invoke
from tests.correct.correct_server import PATTERNS, respond, sample_lines


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text("".join(sample_lines()), encoding="utf-8")
    return path


def test_compare_runs_every_policy_on_the_same_questions(data, tmp_path):
    out = tmp_path / "cmp"
    with ScriptedServer(responder=respond) as server:
        args = ["correct", "compare", "--dataset", "gsm8k", "--data", data, "--out", out, "--max-turns", "2"]
        args += ["--model", "openai/scripted", "--api-base", server.base_url, "--no-progress", "--seed", "1"]
        result = invoke(args)
        assert result.exit_code == 0, result.output
        # turn 0 is asked once (never), then served from the shared cache; fixed sends 2 reprompts each
        fixed_calls = 6 * 2
        assert server.count >= 6 + fixed_calls
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["policy"] for r in rows] == ["never", "fixed", "random", "ucb"]
    by = {r["policy"]: r for r in rows}
    assert all(r["n"] == 6 and r["accuracy_turn0"] == pytest.approx(0.5) for r in rows)  # same initial answers
    assert by["never"]["mean_turns"] == 0 and by["never"]["accuracy_final"] == pytest.approx(0.5)
    # fixed: after 2 reprompts 3 of 6 end right; one went right->wrong (overcorrected), one wrong->right
    expected_final = sum(keys[2] == "R" for _, keys in PATTERNS.values()) / 6
    assert by["fixed"]["accuracy_final"] == pytest.approx(expected_final) and by["fixed"]["mean_turns"] == 2
    assert by["fixed"]["right_to_wrong"] == by["fixed"]["wrong_to_right"] == pytest.approx(1 / 6)
    for name in ("never", "fixed", "random", "ucb"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["n"] == 6 and (out / name / "plots" / "run.png").stat().st_size > 0
        # usage is this policy's own (the client is shared): one request per answer
        assert summary["usage"]["requests"] == 6 + sum(
            t["total_turns"] - 1 for t in map(json.loads, (out / name / "traces.jsonl").read_text().splitlines())
        )
        turn0 = [json.loads(x)["turns"][0] for x in (out / name / "traces.jsonl").read_text().splitlines()]
        assert all(t["cached"] for t in turn0) == (name != "never")
    table = (out / "compare.md").read_text()
    assert table.count("\n") == 2 + 4 and "| fixed | 6 |" in table
    assert (out / "compare.png").stat().st_size > 0
    assert "acc. final" in result.output


def test_compare_refuses_bad_policies_in_one_line(tmp_path):
    result = invoke(["correct", "compare", "--out", tmp_path / "x", "--policies", "never,never"])
    assert result.exit_code == 2 and result.output.startswith("error:") and "distinct" in result.output
    result = invoke(["correct", "compare", "--out", tmp_path / "x", "--policies", "never,greedy"])
    assert result.exit_code == 2 and "policies" in result.output
