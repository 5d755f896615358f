"""The trace data contract (records.py): written traces carry the design document's TraceRecord and
TurnRecord fields; every reader accepts old traces too; a bad record is a one-line error.

The fixtures are real traces of the engine before the names were aligned (assay at commit b6b914a,
against the scripted server of correct_server.py, six GSM8K sample questions, max 2 or 3 reprompts):
- fixtures/old_traces.jsonl: a random-policy run (seed 1, max 3 reprompts: one trace stopped by the
  policy after one reprompt, two cut off by the turn limit) and a never-reprompt trace;
- fixtures/old_run/: the traces.jsonl, run_config.json and policy.json of a Thompson run (seed 5,
  max 2 reprompts) stopped by --limit 3 after three of the six questions.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from assay.correct.classifier import examples_from_traces, read_trace_files
from assay.correct.failure_modes import FAILURE_MODES, label_with_answers
from assay.correct.plots import accuracy_by_turn, plot_run
from assay.correct.policy import ThompsonPolicy
from assay.correct.records import SEED_TRACE_FIELDS, SEED_TURN_FIELDS, TraceRecord, as_trace, read_traces
from assay.correct.summary import summarize
from assay.errors import DataError
from assay.version import __version__
from tests.correct.cli import invoke
from tests.correct.correct_server import IDS
from tests.correct.traces import make_trace

FIXTURES = Path(__file__).parent / "fixtures"
OLD_TRACES = FIXTURES / "old_traces.jsonl"
OLD_RUN = FIXTURES / "old_run"

# The design document's dataclasses, field by field (type, or a check).
SEED_TRACE_TYPES = {
    "trace_id": str,
    "dataset_name": str,
    "question_id": str,
    "reference_answer": str,
    "turns": list,
    "final_accuracy": int,
    "total_tokens": int,
    "total_turns": int,
    "pipeline_version": str,
    "created_at": str,
}
SEED_TURN_TYPES = {
    "turn_id": int,
    "question": str,
    "answer": str,
    "prompt_id": (str, type(None)),
    "prompt_text": (str, type(None)),
    "error_mode": str,
    "confidence_score": float,
    "delta_accuracy": int,
    "token_count": int,
    "timestamp": str,
}


def raw_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def is_utc(stamp: str) -> bool:
    return stamp.endswith("Z") and datetime.fromisoformat(stamp).utcoffset() == UTC.utcoffset(None)


def run(server, data, out, *extra):
    args = ["correct", "run", "--dataset", "gsm8k", "--data", data, "--out", out, "--no-progress"]
    args += ["--model", "openai/scripted", "--api-base", server.base_url, "--max-concurrency", "3", *extra]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    return raw_lines(out / "traces.jsonl")


# ----------------------------------------------------------------------------- written traces


def test_written_traces_carry_the_seed_fields(server, data, tmp_path):
    assert tuple(SEED_TRACE_TYPES) == SEED_TRACE_FIELDS and tuple(SEED_TURN_TYPES) == SEED_TURN_FIELDS
    traces = []
    for name, args in [("fixed", ["--policy", "fixed", "--template", "step_redo"]), ("never", ["--policy", "none"])]:
        written = run(server, data, tmp_path / name, *args, "--max-turns", "2")
        tag = json.loads((tmp_path / name / "run_config.json").read_text())["run_tag"]
        assert all(t["trace_id"] == f"{tag}:{t['question_id']}" for t in written)
        traces += written
    assert len(traces) == 12
    for t in traces:
        assert list(t)[: len(SEED_TRACE_FIELDS)] == list(SEED_TRACE_FIELDS)  # the seed's fields come first
        for name, kind in SEED_TRACE_TYPES.items():
            assert isinstance(t[name], kind) and not isinstance(t[name], bool), name
        assert "final_correct" not in t and "n_turns" not in t  # one name per fact
        assert t["question_id"] == t["row_id"]
        assert t["final_accuracy"] in (0, 1) and t["final_accuracy"] == int(t["turns"][-1]["correct"])
        assert t["total_turns"] == len(t["turns"]) >= 1
        assert t["total_tokens"] == sum(turn["billed_tokens"] for turn in t["turns"])
        assert t["pipeline_version"] == __version__ and is_utc(t["created_at"])
        assert t["dataset_name"] == "gsm8k" and t["reference_answer"].isdigit()
        for i, turn in enumerate(t["turns"]):
            for name, kind in SEED_TURN_TYPES.items():
                assert isinstance(turn[name], kind) and not isinstance(turn[name], bool), name
            assert turn["turn_id"] == i and turn["question"] == t["question"] and is_utc(turn["timestamp"])
            assert turn["error_mode"] in FAILURE_MODES and 0 <= turn["confidence_score"] <= 1
            assert turn["delta_accuracy"] in (-1, 0, 1) and (i > 0 or turn["delta_accuracy"] == 0)
            assert (turn["prompt_id"] is None) == (i == 0)
        assert TraceRecord.model_validate(t).to_dict() == t  # the reader round-trips a written trace
    stops = [t for t in traces if t["stopped_by"] == "policy"]
    assert len(stops) == 6 and sum(t["total_turns"] == 3 for t in traces) == 6  # both endings
    for t in stops:  # the prediction that the stop was chosen in is the last answer's
        assert t["updates"][-1]["context"].startswith(t["turns"][-1]["error_mode"] + "|")


def test_trace_ids_are_reproducible_unique_and_the_policy_keys(server, data, tmp_path):
    args = ["--policy", "thompson", "--max-turns", "2", "--seed", "3"]
    whole = run(server, data, tmp_path / "whole", *args)
    ids = [t["trace_id"] for t in whole]
    assert len(set(ids)) == 6 and sorted(t["question_id"] for t in whole) == sorted(IDS)
    assert ThompsonPolicy.load(tmp_path / "whole" / "policy.json").applied == set(ids)
    # the same inputs again, stopped after two questions and resumed: the same ids as one whole run
    run(server, data, tmp_path / "resumed", *args, "--limit", "2")
    resumed = run(server, data, tmp_path / "resumed", *args, "--resume")
    assert sorted(t["trace_id"] for t in resumed) == sorted(ids)
    # another seed is another run: no id in common (so the files can be pooled)
    other = run(server, data, tmp_path / "other", "--policy", "thompson", "--max-turns", "2", "--seed", "4")
    assert not {t["trace_id"] for t in other} & set(ids)
    # a run that continues a policy which has learned since is another run too
    shared = ["--policy-state", tmp_path / "shared.json"]
    first = run(server, data, tmp_path / "s1", *args, *shared)
    second = run(server, data, tmp_path / "s2", *args, *shared)
    assert {t["trace_id"] for t in first} == set(ids) and not {t["trace_id"] for t in second} & set(ids)
    assert ThompsonPolicy.load(tmp_path / "shared.json").applied == set(ids) | {t["trace_id"] for t in second}


# ----------------------------------------------------------------------------- old traces


def test_old_traces_are_upgraded_on_read():
    raw = raw_lines(OLD_TRACES)
    assert all("final_correct" in r and "n_turns" in r and "trace_id" not in r for r in raw)  # old format
    traces = list(read_traces(OLD_TRACES))
    assert len(traces) == len(raw) == 4
    for old, new in zip(raw, traces, strict=True):
        assert new.trace_id == f"legacy:{old['question_id']}"
        assert new.final_accuracy == int(old["final_correct"]) and new.total_turns == old["n_turns"] + 1
        assert new.total_turns == len(new.turns) and new.reprompts == old["n_turns"]
        assert all(turn.question == old["question"] for turn in new.turns)
        # the old engine logged a prediction on the answer its reprompt produced: it moves one turn back
        shifted = [turn["error_mode"] for turn in old["turns"][1:]]
        assert [turn.error_mode for turn in new.turns[:-1]] == shifted
        last = new.turns[-1]
        if old["stopped_by"] == "policy":  # the stop was chosen in the last answer's context
            assert last.error_mode == old["updates"][-1]["context"].split("|")[0] and last.confidence_score is None
        else:
            assert last.error_mode is None and last.confidence_score is None
        assert new.to_dict()["turns"][0]["answer"] == old["turns"][0]["answer"]
    assert {t.stopped_by for t in traces} == {"policy", "max_turns"} and min(t.total_turns for t in traces) == 1
    # with the run's tag (as on --resume) the id is the key the old engine applied the episode under
    assert next(read_traces(OLD_TRACES, run_tag="abc")).trace_id == f"abc:{raw[0]['question_id']}"


def test_every_reader_accepts_old_and_new_traces(tmp_path):
    raw = raw_lines(OLD_TRACES)
    new = [make_trace([("a 5", "5", False), ("b 6", "6", True)], qid="n1").to_dict()]
    mixed = tmp_path / "traces.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in raw + new), encoding="utf-8")
    everything = raw + new
    final = [r["final_correct"] if "final_correct" in r else r["final_accuracy"] for r in everything]
    reprompts = [r["n_turns"] if "n_turns" in r else r["total_turns"] - 1 for r in everything]

    # summaries: from the file, from the raw dicts, from records: the same figures, computed right
    summary = summarize(read_traces(mixed))
    assert summary == summarize(everything) == summarize([as_trace(r) for r in everything])
    assert summary["n"] == 5 and summary["accuracy_final"] == pytest.approx(sum(final) / 5)
    assert summary["mean_turns"] == pytest.approx(sum(reprompts) / 5)
    assert summary["tokens_per_trace"] == pytest.approx(sum(r["total_tokens"] for r in everything) / 5)
    assert summary["action_counts"]["stop"] == sum(u["arm"] == "stop" for r in everything for u in r["updates"])

    # plots
    depth = max(len(r["turns"]) for r in everything)
    expected = [sum(r["turns"][min(k, len(r["turns"]) - 1)]["correct"] for r in everything) / 5 for k in range(depth)]
    assert accuracy_by_turn(everything) == pytest.approx(expected)
    assert plot_run(list(read_traces(mixed)), tmp_path / "plots").stat().st_size > 0

    # the classifier's training data: one example per distinct (question, answers so far)
    examples = examples_from_traces(read_trace_files([mixed]))
    seen, modes = set(), []
    for r in everything:
        correct = [t["correct"] for t in r["turns"]]
        keys = [t["extracted"] if t["extracted"] is not None else t["answer"] for t in r["turns"]]
        for k in range(len(correct)):
            key = (r["question"], tuple(t["answer"] for t in r["turns"][: k + 1]))
            if key not in seen:
                seen.add(key)
                modes.append(label_with_answers(correct[: k + 1], keys[: k + 1]))
    assert [FAILURE_MODES[e.mode] for e in examples] == modes


@pytest.mark.parametrize("state", ["saved", "lost"])
def test_resume_of_an_old_run(server, data, tmp_path, state):
    """An old run (3 of 6 questions done) resumed: the old traces are neither redone nor applied twice
    to the policy (saved state), or are applied once (state lost); the new traces get the run's tag."""
    out = tmp_path / "old"
    shutil.copytree(OLD_RUN, out)
    if state == "lost":
        (out / "policy.json").unlink()
    tag = json.loads((out / "run_config.json").read_text())["run_tag"]
    old = raw_lines(out / "traces.jsonl")
    traces = run(server, data, out, "--policy", "thompson", "--max-turns", "2", "--seed", "5", "--resume")
    assert traces[:3] == old and len(traces) == 6  # the old lines are kept as they are
    assert sorted(t["question_id"] for t in traces) == sorted(IDS)
    assert all(t["trace_id"] == f"{tag}:{t['question_id']}" for t in traces[3:])
    records = list(read_traces(out / "traces.jsonl", run_tag=tag))
    policy = ThompsonPolicy.load(out / "policy.json")
    assert policy.applied == {t.trace_id for t in records} and len(policy.applied) == 6
    counted = sum(n for arms in policy.table.values() for _, _, n in arms.values())
    assert counted == sum(len(t.updates) for t in records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 6 and summary["run"]["skipped"] == 3 and summary["run"]["written"] == 3
    assert summary["accuracy_final"] == pytest.approx(sum(t.final_accuracy for t in records) / 6)


# ----------------------------------------------------------------------------- bad records


def good_line() -> str:
    return json.dumps(make_trace([("a 5", "5", True)]).to_dict()) + "\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"final_accuracy": 2}, "final_accuracy: must be 0 or 1, got 2"),
        ({"total_turns": 0}, "total_turns"),  # an old n_turns copied over without + 1
        ({"total_turns": 2}, "total_turns is 2 but there are 1 turns"),
        ({"final_accuracy": 0}, "final_accuracy is 0"),
        ({"created_at": "yesterday"}, "created_at: 'yesterday' is not an ISO-8601 timestamp"),
        ({"created_at": "2024-01-10T14:30:00"}, "has no time zone"),
        ({"turns": []}, "turns"),
        ({"failure_mode": "confused"}, "failure_mode: 'confused' is not one of"),
        ({"trace_id": None, "question_id": None}, "trace_id: "),
    ],
)
def test_a_bad_record_is_one_line_naming_file_and_line(tmp_path, change, message):
    bad = json.loads(good_line()) | change
    path = tmp_path / "traces.jsonl"
    path.write_text(good_line() + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        list(read_traces(path))
    text = str(info.value)
    assert text.startswith(f"{path} line 2 is not a trace") and message in text and "\n" not in text


def test_a_bad_turn_and_missing_fields_are_one_line(tmp_path):
    record = json.loads(good_line())
    del record["turns"][0]["correct"], record["reference_answer"], record["dataset_name"]
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.jsonl line 1 .*missing dataset_name, reference_answer, turns\.0\.correct"):
        list(read_traces(path))
    path.write_text(good_line() + "{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.jsonl line 2 is not valid JSON"):
        list(read_traces(path))
    # through a command: `error: ...` in one line, exit status 2
    path.write_text(good_line() + json.dumps(json.loads(good_line()) | {"final_accuracy": "yes"}) + "\n")
    result = invoke(["correct", "train-classifier", path, "--out", tmp_path / "clf"])
    assert result.exit_code == 2 and result.output.startswith("error:") and result.output.count("\n") == 1
    assert "t.jsonl line 2" in result.output and "final_accuracy" in result.output
