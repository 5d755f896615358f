"""`Judge` and `assay score` on real Shakespeare text."""

import json
import os
import subprocess

import pytest

from assay import Judge
from assay.data.corpus import load_corpus
from assay.errors import AssayError, CheckpointError
from tests.conftest import ROOT, assay_cmd

REAL = load_corpus("tinyshakespeare").documents[0].text
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_judge_scores_texts_of_any_length(judges):
    judge = Judge.load(judges)
    assert judge.scorer is not None and judge.inspector is not None
    short, long_ = REAL[:40], REAL[1000:1300]  # 300 characters: ~10 windows of 31 tokens
    results = judge.score([short, long_])
    for text, result in zip([short, long_], results, strict=True):
        assert 0.0 <= result["score"] <= 1.0
        assert result["n_tokens"] == len(text) == len(result["tokens"])  # char tokenizer
        assert "".join(t["text"] for t in result["tokens"]) == text
        assert all(0.0 <= t["p_replaced"] <= 1.0 and len(t["probs"]) == 2 for t in result["tokens"])
    assert judge.score(short)[0]["score"] == results[0]["score"]  # deterministic, str accepted


def test_one_kind_of_judge_alone(judges):
    inspector = Judge.load(judges / "inspector")
    result = inspector.score(REAL[:50])[0]
    assert result["score"] == pytest.approx(sum(t["p_replaced"] for t in result["tokens"]) / 50)
    scorer_only = Judge.load(judges / "scorer" / "best").score(REAL[:50])[0]
    assert "tokens" not in scorer_only


def test_judge_errors(judges, tiny_lm, tmp_path):
    with pytest.raises(AssayError, match="empty text"):
        Judge.load(judges).score(["  "])
    with pytest.raises(CheckpointError, match="holds no judge"):
        Judge.load(tiny_lm)
    with pytest.raises(CheckpointError, match="does not exist"):
        Judge.load(tmp_path / "nothing")


def test_a_corrupt_judge_in_a_folder_is_reported_not_dropped(judges, tmp_path):
    """Dropping the scorer would silently turn every score into the inspector's mean p_replaced."""
    import shutil

    copy = tmp_path / "judges"
    shutil.copytree(judges, copy)
    for which in ("best", "last"):
        (copy / "scorer" / which / "config.json").write_text('{"model": ')  # truncated JSON
    with pytest.raises(CheckpointError, match=r"scorer/best is corrupt \(config.json or state.json"):
        Judge.load(copy)
    shutil.rmtree(copy / "scorer")  # without it, the inspector alone is a judge
    assert Judge.load(copy).scorer is None


def run(*args):
    return subprocess.run(
        [*assay_cmd(), "score", *map(str, args)], env=ENV, capture_output=True, text=True, timeout=120
    )


def test_assay_score_cli(judges, tmp_path):
    text = REAL[:80]
    out = run(judges, text, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) >= {"score", "tokens", "text", "n_tokens"}
    assert set(result["tokens"][0]) >= {"text", "p_replaced"}
    plain = run(judges, text)
    assert plain.returncode == 0 and plain.stdout.startswith("score ")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"text": REAL[i : i + 60]}) for i in (0, 500, 900)) + "\n")
    many = run(judges, "--jsonl", rows, "--json")
    assert [json.loads(line)["text"] for line in many.stdout.splitlines()] == [REAL[i : i + 60] for i in (0, 500, 900)]
    story = tmp_path / "story.txt"
    story.write_text(REAL[:200])
    assert json.loads(run(judges, "--file", story, "--json").stdout)["n_tokens"] == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["  "], "cannot score an empty text"),
        (["--file", "/bin/sh"], "is not text"),
        (["--file", "missing.txt"], "file not found"),
        (["a", "--file", "b"], "exactly one of"),
        ([], "exactly one of"),
    ],
)
def test_assay_score_errors(judges, args, message):
    out = run(judges, *args)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and message in out.stderr


def test_assay_judge_scorer_scores_a_payload(judges):
    from assay.synth.scorers.assay_judge import AssayJudgeScorer

    scorer = AssayJudgeScorer(judges)
    payload = {"title": "Winter Harbour", "thinking": "Slow and cold, wide and dark.", "config": {}, "palettes": []}
    result = scorer.score("a cold harbour", payload)
    assert 0.0 <= result["judge_score"] <= 1.0
    assert result["final_score"] == pytest.approx(1.0 - result["judge_score"])
