"""The audio-scorer benchmark: its hand-made set (configs written for their moods) and a pipeline
folder, each scored as a matched-vs-shuffled AUROC, with the ceiling of the mood's own words."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_audio_scorer_benchmark_writes_auroc_and_ceiling(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    data = json.loads((ROOT / "benchmarks/data/configs_made_for_vibes.json").read_text())
    rows = []
    for i, mood in enumerate(data["moods"][:3]):  # a configs folder: one valid candidate per row
        config = data["base"] | mood["config"]
        row = {"row_id": f"t/{i}#0:m", "dataset": "t", "id_in_dataset": str(i), "vibe_original": mood["vibes"][0]}
        rows.append(row | {"config_candidates": [config], "config_payload": config})
        rows[-1]["scores"] = {"format_valid": [1], "schema_valid": [1], "palette_valid": [1]}
    (folder / "TEST.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "audio.json"
    cmd = [sys.executable, str(ROOT / "benchmarks/audio_scorer.py"), "--scored-dir", str(folder)]
    proc = subprocess.run([*cmd, "--duration", "2", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    made = result["sets"]["made_for_vibes"]
    assert made["rows"] == 18 and made["configs"] == 6
    assert 0 <= made["auroc"] <= 1 and made["ceiling_auroc"] > 0.8  # MiniLM separates the moods' own words
    mine = result["sets"][str(folder)]
    assert mine["rows"] == 3 and mine["configs"] == 3 and 0 <= mine["auroc"] <= 1 and mine["ceiling_auroc"] is None
    bad = subprocess.run([*cmd[:2], "--scored-dir", str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode != 0 and "is not a folder" in bad.stderr
