"""The correction engine end to end: `assay correct run` against a real scripted OpenAI-compatible
server on 127.0.0.1, six real GSM8K questions with scripted right/wrong answer sequences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assay.correct.failure_modes import FAILURE_MODES
from assay.correct.policy import STOP, ThompsonPolicy, load_policy
from tests.correct.cli import invoke
from tests.correct.correct_server import IDS, PATTERNS

TEMPLATE = "critical_are_you_sure"
LAM = 0.001


def run(server, data, out, *extra, code=0):
    args = ["--dataset", "gsm8k", "--data", str(data), "--out", str(out), "--no-progress"]
    args += ["--model", "openai/scripted", "--api-base", server.base_url, "--max-concurrency", "3", *extra]
    result = invoke(["correct", "run", *args])
    assert result.exit_code == code, result.output
    return result


def traces(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]


def words(text: str) -> int:
    return len(text.split())


def test_fixed_policy_traces_labels_rewards_and_summary(server, data, tmp_path):
    out = tmp_path / "run"
    before = server.count
    result = run(server, data, out, "--policy", "fixed", "--template", TEMPLATE, "--max-turns", "2")
    assert server.count - before == 6 * 3  # initial answer + 2 reprompts each
    assert "accuracy turn 0" in result.output
    by_id = {t["row_id"]: t for t in traces(out)}
    assert sorted(by_id) == sorted(IDS)
    for index, rid in enumerate(IDS):
        t = by_id[rid]
        label, keys = PATTERNS[index]
        assert t["failure_mode"] == label, rid
        assert [turn["correct"] for turn in t["turns"]] == [k == "R" for k in keys]
        assert t["question_id"] == rid and t["dataset_name"] == "gsm8k" and t["policy"] == "fixed"
        assert t["total_turns"] == 3 and t["stopped_by"] == "max_turns"  # the initial answer + 2 reprompts
        assert t["initial_correct"] == (keys[0] == "R") and t["final_accuracy"] == int(keys[-1] == "R")
        assert t["turns"][0]["prompt_id"] is None and t["turns"][0]["reward"] is None
        assert t["total_tokens"] == sum(turn["billed_tokens"] for turn in t["turns"])
        # one update per reprompt (max_turns reached: no stop), credited to the answer it produced
        assert len(t["updates"]) == 2
        for turn, update in zip(t["turns"][1:], t["updates"], strict=True):
            assert update["arm"] == turn["prompt_id"] == TEMPLATE and turn["style"] == "critical"
            # the reprompt was chosen in the context predicted after the previous answer
            prev_turn = t["turns"][turn["turn_id"] - 1]
            assert update["context"] == turn["context"]
            assert turn["context"].startswith(prev_turn["error_mode"] + "|") and turn["error_mode"] in FAILURE_MODES
            # the turn's tokens are its reprompt and its answer (the scripted server counts words)
            assert turn["token_count"] == words(turn["prompt_text"]) + words(turn["answer"])
            prev = t["turns"][turn["turn_id"] - 1]["correct"]
            expected = (int(turn["correct"]) - int(prev)) - LAM * turn["token_count"]
            assert update["reward"] == pytest.approx(expected) == turn["reward"]
            assert turn["delta_accuracy"] == int(turn["correct"]) - int(prev)
        assert t["turns"][1]["prompt_text"].startswith(f"Are you sure about {t['turns'][0]['extracted']}?")
    # the context predictor, logged on the answer it saw (the last one too): question 2 keeps one wrong
    # answer (anchored), question 3 changes twice
    assert [turn["error_mode"] for turn in by_id[IDS[2]]["turns"]] == ["anchored", "anchored", "anchored"]
    assert [turn["error_mode"] for turn in by_id[IDS[3]]["turns"]] == ["anchored", "corrected", "wavering"]
    assert by_id[IDS[3]]["turns"][1]["confidence_score"] < by_id[IDS[2]]["turns"][1]["confidence_score"]

    s = json.loads((out / "summary.json").read_text())
    assert s["n"] == 6
    assert s["accuracy_turn0"] == pytest.approx(3 / 6)  # questions 1, 4, 5
    assert s["accuracy_final"] == pytest.approx(3 / 6)  # questions 0, 4, 5
    assert s["right_to_wrong"] == pytest.approx(1 / 6) and s["wrong_to_right"] == pytest.approx(1 / 6)
    assert s["failure_modes"] == {m: 1 for m in FAILURE_MODES}
    assert s["action_counts"] == {TEMPLATE: 12}
    rewards = [u["reward"] for t in by_id.values() for u in t["updates"]]
    assert s["mean_reward_per_action"][TEMPLATE] == pytest.approx(sum(rewards) / 12)
    assert s["reward_trend"]["mean_reward"] == [pytest.approx(sum(rewards) / 12)]  # 6 traces: one block
    correction = sum(turn["billed_tokens"] for t in by_id.values() for turn in t["turns"][1:])
    assert s["tokens_per_improvement"] == pytest.approx(correction / 1)
    assert s["tokens_per_trace"] == pytest.approx(sum(t["total_tokens"] for t in by_id.values()) / 6)
    assert s["run"]["written"] == 6 and s["run"]["failed"] == 0


def test_policy_none_makes_one_call_per_question(server, data, tmp_path):
    out = tmp_path / "none"
    before = server.count
    run(server, data, out, "--policy", "none")
    assert server.count - before == 6
    for t in traces(out):
        assert t["total_turns"] == 1 and t["stopped_by"] == "policy" and len(t["turns"]) == 1
        assert [u["arm"] for u in t["updates"]] == [STOP] and t["updates"][0]["reward"] == 0.0
        assert t["failure_mode"] in ("anchored", "unchanged_correct")
    s = json.loads((out / "summary.json").read_text())
    assert s["accuracy_turn0"] == s["accuracy_final"] == pytest.approx(0.5)
    assert s["tokens_per_improvement"] is None and s["action_counts"] == {STOP: 6}


def test_limit_then_resume_gives_each_trace_once(server, data, tmp_path):
    out = tmp_path / "resume"
    run(server, data, out, "--policy", "thompson", "--limit", "2")
    assert len(traces(out)) == 2
    # without --resume an existing output is refused in one line
    refused = run(server, data, out, "--policy", "thompson", code=2)
    assert refused.output.count("\n") == 1 and "--resume" in refused.output
    run(server, data, out, "--policy", "thompson", "--resume")
    ids = [t["row_id"] for t in traces(out)]
    assert sorted(ids) == sorted(IDS)
    s = json.loads((out / "summary.json").read_text())
    assert s["n"] == 6 and s["run"]["skipped"] == 2 and s["run"]["written"] == 4


def test_policy_state_round_trips_and_continues(server, data, tmp_path):
    state = tmp_path / "policy.json"
    run(server, data, tmp_path / "a", "--policy", "thompson", "--policy-state", str(state), "--seed", "3")
    first = ThompsonPolicy.load(state)
    updates_a = [u for t in traces(tmp_path / "a") for u in t["updates"]]
    assert first.step == len(updates_a)  # every choose() is one select and one update (stop or observed)
    assert sum(n for arms in first.table.values() for _, _, n in arms.values()) == len(updates_a)
    run(server, data, tmp_path / "b", "--policy", "thompson", "--policy-state", str(state))
    second = load_policy(state)
    updates_b = [u for t in traces(tmp_path / "b") for u in t["updates"]]
    assert second.step == len(updates_a) + len(updates_b)
    assert sum(n for arms in second.table.values() for _, _, n in arms.values()) == len(updates_a) + len(updates_b)
    # a saved state of another kind is refused, not overwritten
    bad = run(server, data, tmp_path / "c", "--policy", "epsilon", "--policy-state", str(state), code=2)
    assert "thompson" in bad.output and bad.output.startswith("error:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "fixed"], "--template"),
        (["--policy", "fixed", "--template", "nope"], "unknown template"),
        (["--policy", "greedy"], "policy"),
        (["--dataset", "squad"], "dataset"),
    ],
)
def test_bad_input_is_one_line(server, data, tmp_path, args, message):
    result = run(server, data, tmp_path / "x", *args, code=2)
    assert result.output.startswith("error:") and message in result.output
    assert result.output.count("\n") == 1


def test_predict_context_never_needs_the_reference():
    from assay.correct.engine import predict_context

    assert predict_context("q", [("Answer: 5", "5")], 1) == ("anchored", pytest.approx(0.9))
    mode, conf = predict_context("q", [("5", "5"), ("Maybe 6, I think", "6")], 2)
    assert mode == "corrected" and conf == pytest.approx(0.9 - 0.4 - 0.1)
    assert predict_context("q", [("5", "5"), ("6", "6"), ("5", "5")], 3)[0] == "wavering"
    assert predict_context("q", [("no idea", None)], 1) == ("anchored", 0.2)


def test_boolq_prompt_carries_the_passage(server, tmp_path):
    out = tmp_path / "boolq"
    args = ["run", "--dataset", "boolq", "--policy", "none", "--limit", "2", "--out", str(out), "--no-progress"]
    args += ["--model", "openai/scripted", "--api-base", server.base_url]
    server.reset()
    result = invoke(["correct", *args])
    assert result.exit_code == 0, result.output
    prompts = [r.body["messages"][0]["content"] for r in server.requests]
    assert len(prompts) == 2
    assert all(p.startswith("Context:\n") and "Answer: yes or no" in p for p in prompts)
    assert [t["dataset_name"] for t in traces(out)] == ["boolq", "boolq"]


def test_saved_policy_holds_exactly_the_written_traces_updates(server, data, tmp_path):
    """A kill between writing traces and saving the policy loses nothing on --resume: the traces in
    the file whose updates the saved state lacks are applied first, and none is applied twice."""
    out = tmp_path / "kill"
    run(server, data, out, "--policy", "thompson", "--limit", "3", "--max-turns", "2")
    early = ThompsonPolicy.load(out / "policy.json")
    assert len(early.applied) == 3
    # simulate the kill: the state on disk predates the last written trace
    written = traces(out)
    assert early.applied == {t["trace_id"] for t in written}  # a trace's id is its key in the policy
    last_key = written[-1]["trace_id"]
    stale = ThompsonPolicy.from_json(early.to_json())
    stale.applied.discard(last_key)
    for u in written[-1]["updates"]:  # undo its updates: rebuild the table without them
        a, b, n = stale.table[u["context"]][u["arm"]]
        p = min(1.0, max(0.0, (u["reward"] + 1) / 2))
        stale.table[u["context"]][u["arm"]] = [a - p, b - (1 - p), n - 1]
    stale.save(out / "policy.json")
    run(server, data, out, "--policy", "thompson", "--resume", "--max-turns", "2")
    final = ThompsonPolicy.load(out / "policy.json")
    all_traces = traces(out)
    assert len(all_traces) == 6 and len(final.applied) == 6
    rebuilt = ThompsonPolicy(final.arms)
    for t in all_traces:
        for u in t["updates"]:
            rebuilt.update(u["context"], u["arm"], u["reward"])
    for ctx, arms in rebuilt.table.items():
        for arm, (a, b, n) in arms.items():
            fa, fb, fn = final.table[ctx][arm]
            assert (fa, fn) == (pytest.approx(a), n) and fb == pytest.approx(b)
    assert sum(n for arms in final.table.values() for _, _, n in arms.values()) == sum(
        len(t["updates"]) for t in all_traces
    )


def test_config_file_and_set_reach_the_run(server, data, tmp_path):
    config = tmp_path / "correct.toml"
    config.write_text('[correct]\npolicy = "none"\nmax_turns = 2\n[runner]\nlimit = 2\n', encoding="utf-8")
    out = tmp_path / "cfg"
    run(server, data, out, "-c", str(config), "--set", "runner.limit=3")
    ts = traces(out)
    assert len(ts) == 3 and all(t["policy"] == "never" and t["total_turns"] == 1 for t in ts)
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["config"]["correct"]["policy"] == "never" and saved["config"]["correct"]["max_turns"] == 2
    # a flag is overridden by --set; an unknown key is one line
    out2 = tmp_path / "cfg2"
    run(server, data, out2, "--policy", "thompson", "--set", "correct.policy=none", "--limit", "1")
    assert traces(out2)[0]["policy"] == "never"
    bad = run(server, data, tmp_path / "cfg3", "--set", "correct.turns=2", code=2)
    assert bad.output.startswith("error:") and "turns" in bad.output
