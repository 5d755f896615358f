import asyncio
import json

import pytest

from assay.errors import AssayError, DataError
from assay.pipeline.runner import ErrorRateMonitor, PipelineAborted, RunnerSettings, completed_ids, run_rows
from assay.pipeline.step import Step


def rows(n):
    return [{"row_id": f"r{i}", "x": i} for i in range(n)]


async def double(row):
    await asyncio.sleep(0)
    return {"row_id": row["row_id"], "y": row["x"] * 2}


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def quiet(**kw):
    return RunnerSettings(progress=False, **kw)


def test_writes_every_row_once(tmp_path):
    out = tmp_path / "out.jsonl"
    stats = run_rows(rows(20), double, out, quiet(concurrency=4))
    got = read(out)
    assert stats.written == 20 and stats.failed == 0
    assert sorted(r["y"] for r in got) == [2 * i for i in range(20)]
    assert len({r["row_id"] for r in got}) == 20


def test_refuses_to_overwrite_without_resume(tmp_path):
    out = tmp_path / "out.jsonl"
    run_rows(rows(3), double, out, quiet())
    with pytest.raises(AssayError, match="--resume"):
        run_rows(rows(3), double, out, quiet())
    assert len(read(out)) == 3  # nothing lost
    run_rows(rows(2), double, out, quiet(overwrite=True))
    assert len(read(out)) == 2


def test_a_step_refuses_before_touching_an_existing_run(tmp_path):
    from assay.synth.music_configs import MusicConfigsConfig, generate_configs

    vibes, out = tmp_path / "vibes", tmp_path / "out"
    vibes.mkdir()
    for name in ("TEST", "SFT-Val", "GRPO", "SFT-Train"):
        (vibes / f"{name}.jsonl").write_text("")
    out.mkdir()
    (out / "TEST.jsonl").write_text('{"row_id": "a"}\n')
    (out / "run_config.json").write_text("{}")
    from assay.llm.settings import LLMSettings

    with pytest.raises(AssayError, match="already exists"):
        generate_configs(vibes, out, MusicConfigsConfig(), LLMSettings(model="openai/x"), quiet())
    assert (out / "run_config.json").read_text() == "{}"  # untouched
    assert (out / "TEST.jsonl").read_text() == '{"row_id": "a"}\n'


def test_resume_skips_done_rows_and_cuts_a_torn_line(tmp_path):
    out = tmp_path / "out.jsonl"
    run_rows(rows(5), double, out, quiet(limit=3))
    assert len(read(out)) == 3
    with out.open("a") as f:
        f.write('{"row_id": "r3", "y"')  # a kill in the middle of a write
    assert completed_ids(out) == {"r0", "r1", "r2"}
    calls = []

    async def tracked(row):
        calls.append(row["row_id"])
        return await double(row)

    stats = run_rows(rows(5), tracked, out, quiet(resume=True))
    assert stats.skipped == 3 and stats.written == 2
    assert sorted(calls) == ["r3", "r4"]
    ids = [r["row_id"] for r in read(out)]
    assert sorted(ids) == [f"r{i}" for i in range(5)]  # none lost, none duplicated


def test_failed_rows_go_to_the_error_file_and_are_retried_on_resume(tmp_path):
    out = tmp_path / "out.jsonl"
    fail = {"r2"}

    async def flaky(row):
        if row["row_id"] in fail:
            raise ValueError("boom\nwith a second line")
        return await double(row)

    stats = run_rows(rows(10), flaky, out, quiet(max_error_rate=0.9))
    assert stats.failed == 1 and stats.written == 9
    errors = read(tmp_path / "out.errors.jsonl")
    assert errors == [{"row_id": "r2", "error": "boom with a second line"}]
    fail.clear()
    stats = run_rows(rows(10), flaky, out, quiet(resume=True))
    assert stats.written == 1 and len(read(out)) == 10


def test_error_rate_monitor_aborts_cleanly_and_keeps_what_was_written(tmp_path):
    out = tmp_path / "out.jsonl"

    async def mostly_broken(row):
        if int(row["row_id"][1:]) % 4:
            raise RuntimeError("upstream down")
        return await double(row)

    with pytest.raises(PipelineAborted, match="error rate .* > 0.25 .*resumable"):
        run_rows(rows(100), mostly_broken, out, quiet(concurrency=1))
    written = read(out)
    assert 0 < len(written) < 25
    assert all(int(r["row_id"][1:]) % 4 == 0 for r in written)


def test_monitor_ewma():
    m = ErrorRateMonitor(threshold=0.5, alpha=0.2, min_rows=3)
    assert not m.update(True)  # below min_rows
    assert m.rate == 1.0
    assert not m.update(False)
    assert m.update(True)  # 3 rows, rate 0.667 > 0.5
    for _ in range(10):
        m.update(False)
    assert m.rate < 0.1


def test_bad_input_rows(tmp_path):
    with pytest.raises(DataError, match="no row_id"):
        run_rows([{"x": 1}], double, tmp_path / "o.jsonl", quiet())
    with pytest.raises(DataError, match="duplicate row_id 'r0'"):
        run_rows([{"row_id": "r0"}, {"row_id": "r0"}], double, tmp_path / "o.jsonl", quiet())


def test_read_jsonl_names_the_bad_line(tmp_path):
    from assay.io import read_jsonl

    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"in.jsonl line 2 is not valid JSON"):
        list(read_jsonl(path))


class Remote(Step):
    name = "remote"
    not_shipped = ("rows",)


def test_what_a_ray_actor_of_a_step_gets(tmp_path):
    """The copy of a step sent to a Ray actor has no client and none of its `not_shipped` state, and
    reserves a quarter CPU when it waits on a remote LLM, a whole one when it computes."""
    import pickle

    from assay.llm import LLMSettings

    step = Remote(tmp_path, RunnerSettings(), LLMSettings(model="openai/x", api_base="http://127.0.0.1:9/v1"))
    step.rows, step.client, step.kept = [{"row_id": 1}] * 3, object(), "config"
    copy = pickle.loads(pickle.dumps(step))
    assert (copy.rows, copy.client, copy.kept) == (None, None, "config") and step.rows  # the driver's stays
    assert step.ray_cpus() == 0.25
    assert Remote(tmp_path, RunnerSettings(), LLMSettings(model="local/smollm2")).ray_cpus() == 1.0
    assert Remote(tmp_path, RunnerSettings()).ray_cpus() == 1.0  # no LLM: a scorer-bound step
