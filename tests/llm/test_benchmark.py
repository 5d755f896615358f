"""The LLM throughput benchmark runs end to end and writes its JSON (a smoke run: no rate is asserted)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_llm_throughput_quick(tmp_path):
    out = tmp_path / "llm.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/llm_throughput.py"), "--quick", "--seconds", "0.1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert len(rows) == 9
    for rates in rows.values():
        assert set(rates) == {"c1", "c16", "c64"} and all(rate > 0 for rate in rates.values())
    for transport in ("sdk", "lean"):
        goal = result["goal"][transport]
        assert goal["miss_c64_req_per_s"] > 0 and goal["ratio_vs_raw_server_c64"] > 0
