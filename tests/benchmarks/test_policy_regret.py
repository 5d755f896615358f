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
    assert {"never", "random", "epsilon", "thompson", "shared"} <= set(rows)
