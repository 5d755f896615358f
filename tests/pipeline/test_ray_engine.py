"""`--engine ray` (assay.pipeline.ray_engine) against the local runner, with a real local Ray instance
and the scripted OpenAI-compatible server: the same rows and values, the same errors file, the same
LLM usage; a driver killed with SIGKILL resumes with nothing lost or duplicated; a learning policy's
state holds exactly the updates of the traces written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from assay.llm.testserver import ScriptedServer
from tests.conftest import RAY_INSTALLED, kill_and_resume, one_error, run_cli
from tests.correct.correct_server import N_HEDGED, hedged_lines, hedged_respond
from tests.synth.synth_server import responder

pytestmark = pytest.mark.usefixtures("ray_local")
SPLITS = ("TEST", "SFT-Val", "GRPO", "SFT-Train")
RAY = ["--engine", "ray", "--ray-actors", "2"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_id(path: Path) -> dict[str, dict]:
    return {r["row_id"]: r for r in rows(path)}


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(responder=responder()) as srv:
        yield srv


def step(capsys, server, command: str, inp: Path, out: Path, *extra: str) -> dict:
    """One `assay synth <command>` (no cache: every row is asked of the server); its summary."""
    llm = ["--model", "openai/scripted", "--api-base", server.base_url]
    code, stdout, err = run_cli(capsys, "synth", command, "--input-dir", str(inp), "--out", str(out), *llm, *extra)
    assert code == 0, err
    return json.loads(stdout.rsplit("output in", 1)[0])


def test_ray_engine_writes_what_the_local_runner_writes(tmp_path, capsys, server):
    texts = tmp_path / "texts"
    code, _, err = run_cli(capsys, "synth", "ingest", "--out", str(texts), "--source", "kjv", "--per-source", "8")
    assert code == 0, err
    quiet = ["--set", "runner.progress=false"]
    for engine in ("local", "ray"):
        more = RAY if engine == "ray" else []
        step(capsys, server, "vibes", texts, tmp_path / engine / "vibes", *quiet, *more, "--set", "vibes.levels=[m]")
    for split in SPLITS:  # the split files come from the extractions, whatever their order in the file
        assert rows(tmp_path / "local/vibes" / f"{split}.jsonl") == rows(tmp_path / "ray/vibes" / f"{split}.jsonl")
    assert by_id(tmp_path / "local/vibes/_progress.jsonl") == by_id(tmp_path / "ray/vibes/_progress.jsonl")

    # a row without a vibe fails in both engines, into the same errors file
    vibes = tmp_path / "local/vibes"
    test_rows = rows(vibes / "TEST.jsonl")
    test_rows.append({"row_id": "broken", "vibe_original": ""})
    (vibes / "TEST.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test_rows))
    before = server.count
    for engine in ("local", "ray"):
        more = RAY if engine == "ray" else []
        step(capsys, server, "configs", vibes, tmp_path / engine / "configs", *quiet, *more, "--num-candidates", "2")
    local_calls = (server.count - before) // 2
    for split in SPLITS:
        local, ray = (tmp_path / e / "configs" / f"{split}.jsonl" for e in ("local", "ray"))
        assert by_id(local) == by_id(ray) and by_id(local)
        # the Ray engine writes rows in input order
        expected = [r["row_id"] for r in rows(vibes / f"{split}.jsonl") if r["row_id"] != "broken"]
        assert [r["row_id"] for r in rows(ray)] == expected
    errors = [rows(tmp_path / e / "configs/TEST.errors.jsonl") for e in ("local", "ray")]
    assert errors[0] == errors[1] == [{"row_id": "broken", "error": "row broken: no vibe in field 'vibe_original'"}]
    # two candidates per row, and one probe per run for the structured-output mode (`llm.structured = auto`)
    assert local_calls == 2 * sum(len(by_id(tmp_path / "local/configs" / f"{s}.jsonl")) for s in SPLITS) + 1
    assert not (tmp_path / "ray/configs/.ray").exists()  # the rows-to-do file is gone

    # the scorers are built in each actor (not shipped): the same scores
    for engine in ("local", "ray"):
        more = RAY if engine == "ray" else []
        inp = tmp_path / "local/configs"
        step(capsys, server, "score", inp, tmp_path / engine / "scored", *quiet, *more, "--scorers", "reward")
    for split in SPLITS:
        local, ray = (by_id(tmp_path / e / "scored" / f"{split}.jsonl") for e in ("local", "ray"))
        assert local == ray and all("candidate_scores" in r for r in ray.values())
    run_config = json.loads((tmp_path / "ray/scored/run_config.json").read_text())
    assert run_config["config"]["runner"]["engine"] == "ray"


def test_correct_run_under_ray(tmp_path, capsys):
    data = tmp_path / "test.jsonl"
    data.write_text("".join(hedged_lines()), encoding="utf-8")
    with ScriptedServer(responder=hedged_respond) as srv:
        base = ["correct", "run", "--dataset", "gsm8k", "--data", str(data), "--max-turns", "2", "--no-progress"]
        base += ["--model", "openai/scripted", "--api-base", srv.base_url]
        # a policy that does not learn: the same traces as the local runner, but for timings and dates
        for engine in ("local", "ray"):
            more = RAY if engine == "ray" else []
            fixed = ["--policy", "fixed", "--template", "neutral_review"]
            code, _, err = run_cli(capsys, *base, *fixed, "--out", str(tmp_path / f"fixed_{engine}"), *more)
            assert code == 0, err
        local, ray = (by_id(tmp_path / f"fixed_{e}/traces.jsonl") for e in ("local", "ray"))

        def stable(trace):
            drop = {"created_at", "timestamp", "latency_s"}
            out = {k: v for k, v in trace.items() if k not in drop}
            out["turns"] = [{k: v for k, v in t.items() if k not in drop} for t in trace["turns"]]
            return out

        assert len(local) == N_HEDGED and {k: stable(v) for k, v in local.items()} == {
            k: stable(v) for k, v in ray.items()
        }
        # a learning policy: one state per run, the updates of exactly the traces written
        out = tmp_path / "thompson_ray"
        code, _, err = run_cli(capsys, *base, "--policy", "thompson", "--out", str(out), *RAY)
        assert code == 0, err
    from assay.correct.policy import ThompsonPolicy

    traces = rows(out / "traces.jsonl")
    policy = ThompsonPolicy.load(out / "policy.json")
    assert policy.applied == {t["trace_id"] for t in traces} and len(traces) == N_HEDGED
    counted = sum(n for arms in policy.table.values() for _, _, n in arms.values())
    assert counted == sum(len(t["updates"]) for t in traces) > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["usage"]["requests"] == sum(t["total_turns"] for t in traces)


def test_compare_refuses_the_ray_engine(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "correct", "compare", "--dataset", "gsm8k", "--limit", "2", "--out", str(tmp_path / "c"),
        "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1", "--set", "runner.engine=ray",
    )  # fmt: skip
    assert "the ray engine runs one step on its own" in one_error(code, err)


@pytest.mark.skipif(not RAY_INSTALLED, reason="needs ray (the ray_local fixture says so under CI)")
def test_killed_ray_driver_resumes_with_nothing_lost_or_duplicated(tmp_path):
    vibes = tmp_path / "vibes"
    vibes.mkdir()
    want = [{"row_id": f"r{i:03d}", "vibe_original": f"vibe number {i}", "split": "TEST"} for i in range(120)]
    (vibes / "TEST.jsonl").write_text("".join(json.dumps(r) + "\n" for r in want))
    out = tmp_path / "configs"
    with ScriptedServer(responder=responder(delay_s=0.05)) as srv:
        cmd = [sys.executable, "-m", "assay", "synth", "configs", "--input-dir", str(vibes), "--out", str(out)]
        cmd += ["--model", "openai/scripted", "--api-base", srv.base_url, "--num-candidates", "1"]
        cmd += ["--max-concurrency", "2", "--set", "configs.splits=[TEST]", "--set", "runner.progress=false", *RAY]
        target = out / "TEST.jsonl"
        first, again = kill_and_resume(cmd, target, at_least=10, total=len(want))
    ids = [r["row_id"] for r in rows(target)]
    assert sorted(ids) == [r["row_id"] for r in want]  # 0 lost, 0 duplicated
    assert again.stdout.startswith("{"), again.stdout[:500]  # nothing of Ray's before the summary
    summary = json.loads(again.stdout.rsplit("output in", 1)[0])
    assert summary["splits"]["TEST"]["skipped"] == first
