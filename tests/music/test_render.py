"""The synthesizer: determinism, level, length, every style value, layers and the signal primitives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from assay.errors import AssayError
from assay.music import dsp
from assay.music.config import MusicConfigPrompt, allowed_values
from assay.music.params import render_params
from assay.music.render import read_wav, render, render_layers, write_wav
from assay.music.theory import degree_freq, progression, resolve_harmony_style

DATA = Path(__file__).parent / "data"
SR = 44100


@pytest.fixture(scope="module")
def config() -> MusicConfigPrompt:
    return MusicConfigPrompt.model_validate(json.loads((DATA / "payload_valid.json").read_text())["config"])


def test_same_seed_same_audio_other_seed_other_audio(config):
    a = render(config, duration=3.0, seed=7)
    assert np.array_equal(a, render(config, duration=3.0, seed=7))
    assert not np.array_equal(a, render(config, duration=3.0, seed=8))


def test_level_length_and_type(config):
    for duration, sr in [(2.0, SR), (1.5, 22050), (0.37, SR)]:
        audio = render(config, duration=duration, seed=1, sample_rate=sr)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert len(audio) == round(duration * sr)
        assert np.max(np.abs(audio)) == pytest.approx(0.85, abs=1e-6)


def test_accepts_dicts_payloads_and_rejects_bad_input(config):
    payload = json.loads((DATA / "payload_valid.json").read_text())
    a = render(config, duration=1.0)
    assert np.array_equal(a, render(payload, duration=1.0))
    assert np.array_equal(a, render(payload["config"], duration=1.0))
    with pytest.raises(AssayError, match=r"^config\.pad: 'lush' is not one of"):
        render({**payload["config"], "pad": "lush"}, duration=1.0)
    with pytest.raises(AssayError, match="duration must be a positive"):
        render(config, duration=0.0)


STYLE_FIELDS = [
    "root",
    "mode",
    "bass",
    "pad",
    "melody",
    "rhythm",
    "texture",
    "accent",
    "attack",
    "grain",
    "melody_engine",
    "tension_curve",
    "harmony_style",
    "chord_extensions",
]
ORDINAL_FIELDS = [
    "tempo",
    "brightness",
    "space",
    "motion",
    "stereo",
    "echo",
    "human",
    "melody_density",
    "syncopation",
    "swing",
    "motif_repeat_prob",
    "step_bias",
    "chromatic_prob",
    "cadence_strength",
    "chord_change_bars",
    "phrase_len_bars",
]
CASES = [(field, value) for field in STYLE_FIELDS + ORDINAL_FIELDS for value in allowed_values(field)]


@pytest.mark.parametrize(("field", "value"), CASES, ids=[f"{f}={v}" for f, v in CASES])
def test_every_value_renders_finite_audio(config, field, value):
    # density 6 and depth on: every layer sounds; procedural engine only where the field is the melody itself
    engine = "pattern" if field == "melody" else config.melody_engine
    cfg = config.model_copy(update={"density": 6, "depth": True, "melody_engine": engine, field: value})
    audio = render(cfg, duration=2.0, seed=3)
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) == pytest.approx(0.85, abs=1e-6)


@pytest.mark.parametrize(
    ("field", "alias", "style"),
    [
        ("bass", "octave", "sustained"),
        ("bass", "arp_bass", "pulsing"),
        ("pad", "bright_open", "thin_high"),
        ("melody", "heroic", "rising"),
        ("melody", "call_response", "contemplative"),
        ("rhythm", "military", "soft_four"),
        ("rhythm", "brush", "minimal"),
        ("rhythm", "tabla_essence", "heartbeat"),
        ("texture", "glitch", "shimmer"),
        ("texture", "crystal", "stars"),
        ("texture", "pad_whisper", "breath"),
        ("accent", "brass_hit", "bells"),
        ("accent", "piano_note", "pluck"),
        ("accent", "wind", "chime"),
    ],
)
def test_aliases_sound_like_their_style(config, field, alias, style):
    base = config.model_copy(update={"density": 6, "melody_engine": "pattern", "harmony_style": "pop"})
    a = render(base.model_copy(update={field: alias}), duration=1.5, seed=2)
    assert np.array_equal(a, render(base.model_copy(update={field: style}), duration=1.5, seed=2))


def test_layers_follow_density_depth_and_none(config):
    names = {d: list(render_layers(config.model_copy(update={"density": d, "depth": False}), 1.0)) for d in range(2, 7)}
    assert names[2] == ["bass", "pad"]
    assert names[3] == ["bass", "pad", "melody"]
    assert names[6] == ["bass", "pad", "melody", "rhythm", "texture", "accent"]
    none = {"rhythm": "none", "texture": "none", "accent": "none"}
    quiet = config.model_copy(update={"density": 6, "depth": True, **none})
    assert list(render_layers(quiet, 1.0)) == ["bass", "pad", "melody", "depth"]


def test_procedural_engine_overrides_melody(config):
    a = config.model_copy(update={"density": 3, "melody_engine": "procedural", "melody": "falling"})
    b = config.model_copy(update={"density": 3, "melody_engine": "procedural", "melody": "minimal"})
    assert np.array_equal(render_layers(a, 2.0)["melody"], render_layers(b, 2.0)["melody"])
    c = config.model_copy(update={"density": 3, "melody_engine": "pattern", "melody": "procedural"})
    assert np.array_equal(render_layers(a, 2.0)["melody"], render_layers(c, 2.0)["melody"])


def test_harmony_auto_rules(config):
    def style(**update):
        return resolve_harmony_style(render_params(config.model_copy(update={"harmony_style": "auto", **update})))

    assert style(rhythm="none", space="large") == "ambient"
    assert style(rhythm="none", space="medium", bass="drone") == "cinematic"
    assert style(pad="cinematic", bass="walking") == "cinematic"
    assert style(bass="walking", texture="vinyl_crackle") == "jazz"
    assert style(bass="walking", texture="none", melody="ornamental") == "jazz"
    assert style(bass="walking", texture="none", melody="rising") == "pop"
    assert style(harmony_style="jazz") == "jazz"


def test_progression_timing_and_pitch(config):
    p = render_params(config.model_copy(update={"tempo": "medium", "chord_change_bars": "slow", "root": "a"}))
    chords = progression(p, 10.0, np.random.default_rng(0))
    bar = 4 * 60 / 110
    assert [c.start_s for c in chords] == pytest.approx([0.0, 2 * bar, 4 * bar])  # one chord every 2 bars
    assert chords[0].degree == 0
    assert degree_freq(p, 0, 4) == pytest.approx(440.0)
    assert degree_freq(p, 7, 3) == pytest.approx(440.0)  # degree 7 is the octave
    minor = render_params(config.model_copy(update={"root": "c", "mode": "minor"}))
    assert degree_freq(minor, 2, 4) == pytest.approx(261.63 * 2 ** (3 / 12))


def test_wav_round_trip(tmp_path, config):
    audio = render(config, duration=1.0, seed=5)
    path = write_wav(tmp_path / "sub" / "x.wav", audio)
    back, sr = read_wav(path)
    assert sr == SR and back.dtype == np.float32 and np.array_equal(back, audio)
    assert not list(path.parent.glob(".*tmp"))  # atomic: no temporary left behind
    with pytest.raises(AssayError, match="no such WAV file"):
        read_wav(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(AssayError, match="not a readable WAV"):
        read_wav(tmp_path / "bad.wav")


def test_adsr_shape_and_minimums():
    env = dsp.adsr(1.0, 0.1, 0.2, 0.5, 0.4, 1000)
    assert len(env) == 1400
    assert env[0] == 0.0 and env[100] == pytest.approx(1.0) and env[300] == pytest.approx(0.5)
    assert env[999] == pytest.approx(0.5) and env[-1] == pytest.approx(0.5 / 400, abs=1e-3)
    short = dsp.adsr(0.05, 0.1, 0.2, 0.5, 0.0, 1000)  # released mid-attack, release floored to 10 ms
    assert len(short) == 60 and short[49] == pytest.approx(0.49, abs=0.02) and short[-1] < 0.1
    assert np.argmax(dsp.adsr(0.5, 0.0, 0.1, 0.5, 0.1, 10000) >= 1.0) == 50  # 5 ms minimum attack


def test_filters_and_oscillators():
    low, high = dsp.sine(100, SR, SR), dsp.sine(8000, SR, SR)

    def rms(x):
        return float(np.sqrt(np.mean(x[SR // 2 :] ** 2)))

    assert rms(dsp.lowpass(low, 1000, SR)) > 0.69 and rms(dsp.lowpass(high, 1000, SR)) < 0.02
    assert rms(dsp.highpass(high, 1000, SR)) > 0.69 and rms(dsp.highpass(low, 1000, SR)) < 0.01
    assert np.all(np.isfinite(dsp.lowpass(low, 1e9, SR)))  # cutoff clamped below Nyquist
    for osc in (dsp.sine, dsp.triangle, dsp.saw, dsp.saw_oversampled):
        wave = osc(440.0, 4410, SR)
        assert wave.shape == (4410,) and np.max(np.abs(wave)) <= 1.2 and abs(float(np.mean(wave))) < 0.05


def test_polyblep_saw_aliases_less_than_naive():
    f, n = 3520.0, SR
    naive = 2.0 * dsp.phase01(f, n, SR) - 1.0
    waves = {"naive": naive, "blep": dsp.saw(f, n, SR)}
    spectrum = {name: np.abs(np.fft.rfft(x * np.hanning(n))) for name, x in waves.items()}
    freqs = np.fft.rfftfreq(n, 1 / SR)
    harmonic = np.abs(((freqs / f) + 0.5) % 1.0 - 0.5) * f < 20  # bins near a true harmonic
    alias = {k: float(np.sum(v[~harmonic] ** 2) / np.sum(v**2)) for k, v in spectrum.items()}
    assert alias["blep"] < 0.3 * alias["naive"]


def test_effect_taps():
    impulse = np.zeros(10000)
    impulse[0] = 1.0
    wet = dsp.reverb(impulse, room=0.5, size=1.0, sr=10000)
    assert np.flatnonzero(wet).tolist() == [0, 290, 370, 410, 530, 670]
    assert wet[370] == pytest.approx(0.5 * 0.7)
    echoes = dsp.delay(impulse, 0.1, feedback=0.5, wet=0.8, sr=10000)
    assert np.flatnonzero(echoes).tolist() == [0, 1000, 2000, 3000, 4000]
    assert echoes[2000] == pytest.approx(0.25 * 0.8)
    widened = dsp.stereo_micro_delay(impulse, 1.0, 10000)
    assert np.flatnonzero(widened).tolist() == [0, 100] and widened[100] == pytest.approx(0.12)
    assert np.array_equal(dsp.stereo_micro_delay(impulse, 0.0, 10000), impulse)


def test_humanize_gain_is_bounded():
    x = np.ones(100000)
    y = dsp.humanize(x, 0.8, np.random.default_rng(0))
    assert y.min() >= 0.9 and y.max() <= 1.1 and y.std() > 0.05
    assert np.array_equal(dsp.humanize(x, 0.0, np.random.default_rng(0)), x)


def test_every_literal_is_covered():
    # the parametrised style test covers each label of every non-numeric field
    literal_fields = {f for f, info in MusicConfigPrompt.model_fields.items() if get_args(info.annotation)}
    assert literal_fields - {"density"} <= set(STYLE_FIELDS + ORDINAL_FIELDS) | {
        "register_min_oct",
        "register_max_oct",
    }
