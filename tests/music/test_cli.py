"""`music render` through typer's test runner (the `music_app` group on its own)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from assay.cli.music import music_app
from assay.errors import AssayError
from assay.music.render import read_wav, render

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def test_render_payload_writes_wav_and_prints_features(tmp_path):
    out = tmp_path / "song.wav"
    result = runner.invoke(music_app, ["render", str(DATA / "payload_valid.json"), "-o", str(out), "--duration", "2"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    for key in ("title: Lantern Over Winter Sea", "spectral_centroid_hz:", "loudness_dbfs:", "description:"):
        assert key in result.output
    audio, sr = read_wav(out)
    assert sr == 44100 and len(audio) == 88200
    payload = json.loads((DATA / "payload_valid.json").read_text())
    assert np.array_equal(audio, render(payload, duration=2.0, seed=0))


def test_render_bare_config_json_output_and_seed(tmp_path):
    config = json.loads((DATA / "payload_valid.json").read_text())["config"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "a.wav"
    args = ["render", str(path), "-o", str(out), "--duration", "1.5", "--seed", "4", "--json"]
    result = runner.invoke(music_app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["out"] == str(out) and summary["title"] is None and summary["duration_s"] == 1.5
    assert np.array_equal(read_wav(out)[0], render(config, duration=1.5, seed=4))


def test_bad_config_is_a_one_line_user_error(tmp_path):
    config = json.loads((DATA / "payload_valid.json").read_text())["config"]
    config["texture"] = "rain"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    result = runner.invoke(music_app, ["render", str(path), "-o", str(tmp_path / "x.wav")])
    assert isinstance(result.exception, AssayError)
    assert str(result.exception).startswith("config.texture: 'rain' is not one of none, shimmer")
    assert not (tmp_path / "x.wav").exists()

    for args, message in [
        ([str(tmp_path / "missing.json")], "no such config file"),
        (['{"tempo": "slow",'], "invalid JSON"),
    ]:
        result = runner.invoke(music_app, ["render", *args, "-o", str(tmp_path / "y.wav")])
        assert isinstance(result.exception, AssayError) and message in str(result.exception)
        assert "\n" not in str(result.exception)
    # a bad number is refused by the option's bounds, before anything is read
    result = runner.invoke(music_app, ["render", str(DATA / "payload_valid.json"), "--duration", "-1", "-o", "z.wav"])
    assert result.exit_code == 2 and "--duration" in result.output and not (tmp_path / "z.wav").exists()


def test_help_lists_render():
    result = runner.invoke(music_app, ["--help"])
    assert result.exit_code == 0 and "render" in result.output and "Music configs" in result.output
