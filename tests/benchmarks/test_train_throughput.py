"""The benchmark script runs and writes its JSON (a smoke run: no timing is asserted)."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_train_throughput_quick(tmp_path):
    out = tmp_path / "tp.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/train_throughput.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    row = result["rows"][0]
    for name in ("assay", "hf_bert"):
        assert row[name]["tokens_per_s"] > 0 and 0 < row[name]["mfu"] < 1.5
    assert row["ratio_tokens_per_s"] == row["assay"]["tokens_per_s"] / row["hf_bert"]["tokens_per_s"]
    assert "assay / HF" in proc.stdout
