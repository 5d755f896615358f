"""Render a music config to audio, deterministically, and read/write mono float WAV files.

    audio = render(config, duration=16.0, seed=0)   # float32, shape (round(duration·sr),), peak 0.85
    write_wav("out.wav", audio)

All randomness (template choice, melodies, noise) comes from one `np.random.Generator(seed)`, so
the same config, duration, seed and sample rate give the same samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError
from assay.io import atomic_write, writing
from assay.music import dsp
from assay.music.config import MusicConfigPrompt
from assay.music.layers import Scene, layers_for
from assay.music.params import RenderParams, render_params
from assay.music.payload import load_music_json
from assay.music.theory import progression

SAMPLE_RATE = 44100
PEAK = 0.85


def to_params(config: MusicConfigPrompt | RenderParams | dict[str, Any] | str) -> RenderParams:
    """Accept a prompt config, a bare-config or payload dict/JSON text, or ready `RenderParams`."""
    if isinstance(config, RenderParams):
        return config
    if not isinstance(config, MusicConfigPrompt):
        config, _ = load_music_json(config)
    return render_params(config)


def _render(
    config: MusicConfigPrompt | RenderParams | dict[str, Any] | str, duration: float, seed: int, sample_rate: int
) -> tuple[Scene, dict[str, np.ndarray]]:
    if not duration > 0 or not np.isfinite(duration):
        raise AssayError(f"duration must be a positive number of seconds, got {duration}")
    if sample_rate < 8000:
        raise AssayError(f"sample rate must be at least 8000 Hz, got {sample_rate}")
    p = to_params(config)
    rng = np.random.default_rng(seed)  # the render's only source of randomness
    scene = Scene(p=p, sr=sample_rate, duration=float(duration), chords=progression(p, duration, rng), rng=rng)
    return scene, {name: gain * make(scene) for name, make, gain in layers_for(p)}


def render_layers(
    config: MusicConfigPrompt | RenderParams | dict[str, Any] | str,
    duration: float = 16.0,
    seed: int = 0,
    sample_rate: int = SAMPLE_RATE,
) -> dict[str, np.ndarray]:
    """Each sounding layer's float64 samples before mixing (layer gain applied), by layer name."""
    return _render(config, duration, seed, sample_rate)[1]


def render(
    config: MusicConfigPrompt | RenderParams | dict[str, Any] | str,
    duration: float = 16.0,
    seed: int = 0,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Mono float32 audio, shape (round(duration·sample_rate),), peak-normalised to 0.85.

    Layers are summed, humanised (per-sample gain), given the stereo micro-delay and normalised.
    """
    scene, layers = _render(config, duration, seed, sample_rate)
    mix = np.sum(list(layers.values()), axis=0)
    mix = dsp.humanize(mix, scene.p.human, scene.rng)
    mix = dsp.stereo_micro_delay(mix, scene.p.stereo, sample_rate)
    peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
    if peak > 0.0:
        mix = mix * (PEAK / peak)
    return mix.astype(np.float32)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono audio as a 1-channel 32-bit float WAV, atomically. Returns the path."""
    from scipy.io import wavfile

    data = np.asarray(audio, dtype=np.float32)
    if data.ndim != 1:
        raise AssayError(f"expected mono audio (1-D), got shape {data.shape}")
    path = Path(path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            wavfile.write(f, sample_rate, data)

    with writing(path):
        atomic_write(path, write)
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV as (float32 mono samples, sample rate); integer PCM is scaled to [-1, 1],
    multi-channel audio averaged."""
    from scipy.io import wavfile

    try:
        sample_rate, data = wavfile.read(str(path))
    except FileNotFoundError:
        raise AssayError(f"no such WAV file: {path}") from None
    except ValueError as exc:
        raise AssayError(f"{path}: not a readable WAV file ({exc})") from None
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1).astype(np.float32)
    return data, int(sample_rate)
