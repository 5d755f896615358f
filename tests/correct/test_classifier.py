"""The failure-mode + confidence classifier: targets from traces, training on traces of a real run
(scripted server, 40 real GSM8K questions), held-out metrics against the baselines, save/load, and
the engine using it for the policy context."""

from __future__ import annotations

import json

import pytest

from assay.correct.classifier import FailureClassifier, examples_from_traces, hand_features
from assay.correct.failure_modes import FAILURE_MODES
from assay.llm.testserver import ScriptedServer
from tests.correct.cli import invoke
from tests.correct.correct_server import N_HEDGED, hedged_lines, hedged_respond
from tests.correct.traces import make_trace as trace

N = N_HEDGED


def test_examples_have_the_prefix_mode_and_current_correctness():
    t = trace([("a 5", "5", False), ("b 6", "6", True), ("c 7", "7", False)])
    examples = examples_from_traces([t])
    assert [FAILURE_MODES[e.mode] for e in examples] == ["anchored", "corrected", "wavering"]
    assert [e.correct for e in examples] == [0, 1, 0]
    assert [len(e.answers) for e in examples] == [1, 2, 3]
    # the same prefixes from another run of the same question count once
    again = trace([("a 5", "5", False), ("b 6", "6", True)])
    assert len(examples_from_traces([t, again])) == 3


def test_hand_features():
    f = hand_features([("5", "5"), ("Maybe 6, I think", "6")], cosine_prev=0.5)
    assert f[:5] == [1.0, 1.0, 1.0, 0.0, 2.0] and f[6] == 0.5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clf")
    data = tmp / "test.jsonl"
    data.write_text("".join(hedged_lines()), encoding="utf-8")
    with ScriptedServer(responder=hedged_respond) as server:
        llm = ["--model", "openai/scripted", "--api-base", server.base_url, "--no-progress"]
        run = ["correct", "run", "--dataset", "gsm8k", "--data", data, "--max-turns", "2", *llm]
        result = invoke([*run, "--out", tmp / "runs", "--policy", "fixed", "--template", "step_redo"])
        assert result.exit_code == 0, result.output
        result = invoke(["correct", "train-classifier", tmp / "runs" / "traces.jsonl", "--out", tmp / "clf"])
        assert result.exit_code == 0, result.output
        used = invoke([*run, "--out", tmp / "with_clf", "--policy", "thompson", "--classifier", tmp / "clf"])
        assert used.exit_code == 0, used.output
    return tmp, result.output


def test_training_beats_the_majority_baselines_on_held_out_questions(trained):
    tmp, output = trained
    meta = json.loads((tmp / "clf" / "classifier.json").read_text())
    m = meta["metrics"]
    assert (tmp / "clf" / "model.safetensors").is_file()
    assert m["n_train"] + m["n_val"] == m["n_examples"] == N * 3 and m["n_val"] > 0
    assert m["train_loss_last"] < 0.5 * m["train_loss_first"]
    # hedged answers are the wrong ones: the confidence head must find that on unseen questions
    assert m["confidence_accuracy"] > m["confidence_majority_accuracy"]
    assert m["confidence_accuracy"] >= 0.9 and m["confidence_auc"] >= 0.9
    assert m["mode_accuracy"] > m["mode_majority_accuracy"]
    assert "majority class" in output and "held-out" in output


def test_loaded_classifier_predicts_and_drives_the_engine(trained):
    tmp, _ = trained
    clf = FailureClassifier.load(tmp / "clf")
    mode, conf = clf("How many?", [("I think it might be 7, but I am not sure, maybe.\nAnswer: 7", "7")], 1)
    sure_mode, sure = clf("How many?", [("Adding the amounts step by step gives 7.\nAnswer: 7", "7")], 1)
    assert mode in FAILURE_MODES and 0.0 <= conf < 0.5 < sure <= 1.0
    traces = [json.loads(x) for x in (tmp / "with_clf" / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == N and all(t["predictor"] == "classifier:clf" for t in traces)
    summary = json.loads((tmp / "with_clf" / "summary.json").read_text())
    assert summary["predictor"] == "classifier:clf"
    for t in traces:
        for turn in t["turns"]:  # every answer is classified, the last one included
            assert turn["error_mode"] in FAILURE_MODES and 0.0 <= turn["confidence_score"] <= 1.0


def test_bad_classifier_inputs_are_one_line(tmp_path):
    result = invoke(["correct", "train-classifier", tmp_path / "missing.jsonl", "--out", tmp_path / "c"])
    assert result.exit_code == 2 and result.output.startswith("error:") and result.output.count("\n") == 1
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n')
    result = invoke(["correct", "train-classifier", tmp_path / "x.jsonl", "--out", tmp_path / "c"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "x.jsonl line 1 is not a trace" in result.output and "missing trace_id, dataset_name" in result.output
    result = invoke(["correct", "run", "--out", tmp_path / "r", "--classifier", tmp_path, "--no-progress"])
    assert result.exit_code == 2 and "not a classifier folder" in result.output
