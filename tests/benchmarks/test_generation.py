"""The generation benchmark runs on two tiny runs and writes its JSON (a smoke run: the models are
barely trained, so no quality is asserted, only the rows, their metrics and the goal checks)."""

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import ROOT, tiny_tree


@pytest.fixture(scope="module")
def tiny_ar(tmp_path_factory):
    """The autoregressive twin of `tiny_lm`: the same tiny config, causal attention."""
    from assay.config import validate
    from assay.train.config import TrainingConfig
    from assay.train.trainer import train

    out = tmp_path_factory.mktemp("ar") / "ar"
    tree = tiny_tree(out, model={"attention": "causal"}, train={"max_iters": 30, "eval_interval": 30, "lr": 3e-3})
    train(validate(TrainingConfig, tree))
    return out


def test_generation_quick(tmp_path, tiny_lm, tiny_ar):
    out = tmp_path / "gen.json"
    cmd = [sys.executable, str(ROOT / "benchmarks/generation.py"), "--quick", "--length", "32", "--threads", "1"]
    cmd += ["--diffusion", str(tiny_lm), "--ar", str(tiny_ar), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["samples"], result["length"], result["grid"]) == (4, 32, "quick")

    rows = result["rows"]
    kinds = [r["kind"] for r in rows]
    assert kinds[:2] == ["real", "ar"] and kinds[2:] == ["diffusion"] * (len(rows) - 2) and len(rows) >= 5
    assert {r["sampler"] for r in rows[2:]} == {"confidence", "random", "ancestral", "remdm"}
    for row in rows:
        for key in ("bits_per_char", "entropy_bits", "distinct_bigrams"):
            assert math.isfinite(row[key]), (row["name"], key)
        assert row["bits_per_char"] > 0 and 0 < row["distinct_bigrams"] <= 1 and row["longest_repeat"] >= 1
        if row["kind"] == "real":
            assert row["chars_per_s"] is None and row["batched"] is None
        else:
            assert row["chars_per_s"] > 0 and row["batched"] is True
    assert 3.0 < rows[0]["entropy_bits"] < 5.0  # English characters: about 4.1 bits

    for row in rows:  # the goal checks: value, bound, verdict, and their count
        goals = row["goals"]
        assert set(goals) == {"bpc_ratio", "entropy_gap", "longest_repeat"}
        for name, bound in (("bpc_ratio", 1.15), ("entropy_gap", 0.05), ("longest_repeat", 2)):
            assert goals[name]["max"] == bound and goals[name]["met"] == (goals[name]["value"] <= bound)
        assert row["goals_met"] == sum(g["met"] for g in goals.values())
        assert math.isclose(goals["bpc_ratio"]["value"], row["bits_per_char"] / rows[1]["bits_per_char"])
    assert rows[1]["goals"]["bpc_ratio"]["value"] == 1.0 and rows[0]["goals"]["entropy_gap"]["value"] == 0.0

    marked = [i for i, r in enumerate(rows) if r["best"]]
    assert marked == [result["best"]["index"]] and result["best"]["row"] == rows[marked[0]]["name"]
    ranked = max(rows[2:], key=lambda r: (r["goals_met"], -r["goals"]["bpc_ratio"]["value"]))
    assert ranked == rows[marked[0]]
    assert "bits/char" in proc.stdout and rows[marked[0]]["first_sample"][:20] in proc.stdout
