"""The policy regret benchmark runs end to end on the simulator and writes its JSON and plot."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_policy_regret_quick(tmp_path):
    out = tmp_path / "regret.json"
    cmd = [sys.executable, str(ROOT / "benchmarks/policy_regret.py"), "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 10_000
    measured = result["scenarios"]["boolq_measured"]
    assert not measured["context_dependent"] and result["scenarios"]["context_dependent"]["context_dependent"]
    rows = measured["horizons"]["300"]
    assert rows["_best_fixed"]["name"] == "fixed:step_redo"  # the one arm that helps, found among 36
    assert rows["fixed:step_redo"]["regret"] == 0 and rows["random"]["regret"] > 0
    assert {"never", "random", "epsilon", "thompson", "shared", "ucb"} <= set(rows)
    # the default learner has found step_redo by episodes 201-300, where the other learners have not
    recent = {n: rows[n]["recent_reward"] for n in ("random", "epsilon", "thompson", "shared", "ucb")}
    assert max(recent, key=recent.get) == "ucb" and recent["ucb"] > 0.5 * rows["fixed:step_redo"]["recent_reward"]
    assert set(measured["goal"]) == {"within_5pct_by_300"}
    worlds = result["random_worlds"]  # held-out worlds: every learner against each world's best fixed policy
    assert worlds["worlds"] == 3 and set(worlds["horizons"]) == {"100", "300"}
    assert worlds["horizons"]["300"]["best_fixed"]["worlds_at_or_above_best_fixed"] == 3
