"""The test suite's own guarantees: a hung test fails (pytest-timeout) instead of stalling CI."""

from __future__ import annotations

import subprocess
import sys
import time


def test_a_hanging_test_fails_within_its_timeout(tmp_path):
    (tmp_path / "test_hang.py").write_text("import time\n\ndef test_hang():\n    time.sleep(120)\n")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=2", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout
    assert "Timeout" in proc.stdout and "1 failed" in proc.stdout
    assert time.monotonic() - started < 30


def test_the_suite_has_a_timeout_configured():
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert 60 <= config["tool"]["pytest"]["ini_options"]["timeout"] <= 900
