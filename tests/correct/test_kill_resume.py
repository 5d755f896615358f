"""Kill -9 an `assay correct run` process mid-way and resume it: every question traced exactly once,
and the saved policy holds exactly the updates of the traces in the file."""

from __future__ import annotations

import json
import sys

from assay.correct.policy import ThompsonPolicy
from assay.llm.testserver import ScriptedServer
from tests.conftest import kill_and_resume
from tests.correct.correct_server import N_HEDGED, hedged_lines, hedged_respond


def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path):
    data = tmp_path / "test.jsonl"
    data.write_text("".join(hedged_lines()), encoding="utf-8")
    out = tmp_path / "run"
    with ScriptedServer(responder=lambda body: hedged_respond(body, delay_s=0.03)) as srv:
        cmd = [sys.executable, "-m", "assay", "correct", "run", "--dataset", "gsm8k", "--data", str(data)]
        cmd += ["--out", str(out), "--policy", "thompson", "--max-turns", "2", "--no-progress"]
        cmd += ["--model", "openai/scripted", "--api-base", srv.base_url, "--max-concurrency", "2"]
        target = out / "traces.jsonl"
        first, _ = kill_and_resume(cmd, target, at_least=6, total=N_HEDGED, timeout=90)
    traces = [json.loads(line) for line in target.read_text().splitlines()]
    ids = [t["row_id"] for t in traces]
    assert len(ids) == len(set(ids)) == N_HEDGED  # 0 lost, 0 duplicated
    policy = ThompsonPolicy.load(out / "policy.json")
    assert policy.applied == {t["trace_id"] for t in traces} and len(policy.applied) == N_HEDGED
    counted = sum(n for arms in policy.table.values() for _, _, n in arms.values())
    assert counted == sum(len(t["updates"]) for t in traces)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == N_HEDGED and summary["run"]["skipped"] == first
