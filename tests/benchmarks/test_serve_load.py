"""benchmarks/serve_load.py runs end to end (a few requests, the tiny judges) and writes its JSON."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_serve_load_benchmark_runs(judges, tmp_path):
    out = tmp_path / "serve_load.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), "--judge", str(judges)]
    cmd += ["--requests", "24", "--concurrency", "1", "8", "--chars", "60", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [level["concurrency"] for level in result["levels"]] == [1, 8]
    for level in result["levels"]:
        assert level["server"]["requests_per_s"] > 0 and level["server"]["p99_ms"] >= level["server"]["p50_ms"]
        assert level["server"]["texts_per_model_call"] >= 1
    assert result["in_process_single"]["texts_per_s"] > 0
    assert "server / in-process" in done.stdout
