"""The stream benchmark runs end to end and writes its JSON (a smoke run: no timing is asserted)."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_stream_throughput_quick(tmp_path):
    out = tmp_path / "st.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/stream_throughput.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows["produce_1w"]["shards"] == rows["produce_2w"]["shards"] == 4
    for name in ("produce_1w", "produce_2w"):
        assert rows[name]["shards_per_s_steady"] > 0 and rows[name]["ratio_to_consumption"] > 0
    for name in ("consume", "live_1_producer"):
        assert rows[name]["shards_per_s"] > 0 and 0 <= rows[name]["data_frac"] <= 1
