import numpy as np
import pytest

from assay.judges.calibration import calibration_bins, calibration_plot


def test_calibration_bins_and_plot(tmp_path):
    pred = np.array([0.05, 0.07, 0.55, 0.95])
    true = np.array([0.0, 0.2, 0.5, 1.0])
    rows = calibration_bins(pred, true, bins=10)
    assert [r["n"] for r in rows] == [2, 1, 1]
    assert rows[0]["pred"] == pytest.approx(0.06) and rows[0]["true"] == pytest.approx(0.1)
    calibration_plot(pred, true, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
