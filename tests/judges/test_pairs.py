"""Ranking held-out (real passage, rewrite) pairs with a judge: `assay score JUDGE --pairs STREAM`."""

import json
import math
import subprocess

import pytest

from assay.errors import DataError
from assay.judges import Judge
from assay.judges.pairs import rank_pairs
from tests.conftest import assay_cmd


def test_rank_pairs_scores_real_against_rewrite(judges, tiny_stream):
    out = rank_pairs(Judge.load(judges), tiny_stream, k=12)
    assert out["pairs"] == 12 == len(out["details"])
    right = [p["score_rewrite"] > p["score_original"] for p in out["details"]]
    assert out["share_right"] == sum(right) / 12
    big = [p for p in out["details"] if p["rewritten"] >= 0.2]
    assert out["pairs_at_least"] == len(big)
    assert (
        math.isnan(out["share_right_at_least"])
        if not big
        else out["share_right_at_least"] == sum(p["right"] for p in big) / len(big)
    )
    for pair in out["details"]:
        assert pair["rewritten"] > 0  # an unchanged rewrite cannot be ranked: never drawn
        assert pair["original"]["text"] != pair["rewrite"]["text"]
    again = rank_pairs(Judge.load(judges), tiny_stream, k=12)
    assert [p["index"] for p in again["details"]] == [p["index"] for p in out["details"]]  # fixed seed


def test_pairs_from_the_cli_and_its_errors(judges, tiny_stream, tiny_lm):
    run = subprocess.run(
        [*assay_cmd(), "score", str(judges), "--pairs", str(tiny_stream), "--k", "8", "--json"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["pairs"] == 8 and 0.0 <= out["share_right"] <= 1.0 and "details" not in out
    text = subprocess.run(
        [*assay_cmd(), "score", str(judges), "--pairs", str(tiny_stream), "--k", "4", "--examples", "1"],
        capture_output=True,
        text=True,
    )
    assert text.returncode == 0 and "held-out pairs ranked the right way" in text.stdout
    assert "real passage:" in text.stdout and "its rewrite:" in text.stdout
    both = subprocess.run(
        [*assay_cmd(), "score", str(judges), "hi", "--pairs", str(tiny_stream)], capture_output=True, text=True
    )
    assert both.returncode != 0 and "exactly one of" in both.stderr
    with pytest.raises(DataError, match="not a stream folder"):
        rank_pairs(Judge.load(judges), tiny_lm, k=2)
