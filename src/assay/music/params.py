"""How the renderer reads a music config: the 15 ordinal labels as numbers in [0, 1] (spec §2a),
clamped, ready for the layers (`render_params`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assay.music.config import MusicConfigPrompt

# Ordinal label → float (spec §2a); the renderer reads only these numbers.
ORDINAL_VALUES: dict[str, dict[str, float]] = {
    "tempo": {"very_slow": 0.15, "slow": 0.30, "medium": 0.50, "fast": 0.70, "very_fast": 0.90},
    "brightness": {"very_dark": 0.1, "dark": 0.3, "medium": 0.5, "bright": 0.7, "very_bright": 0.9},
    "space": {"dry": 0.1, "small": 0.3, "medium": 0.5, "large": 0.7, "vast": 0.95},
    "motion": {"static": 0.1, "slow": 0.3, "medium": 0.5, "fast": 0.7, "chaotic": 0.9},
    "stereo": {"mono": 0.0, "narrow": 0.25, "medium": 0.5, "wide": 0.75, "ultra_wide": 1.0},
    "echo": {"none": 0.0, "subtle": 0.25, "medium": 0.5, "heavy": 0.75, "infinite": 0.95},
    "human": {"robotic": 0.0, "tight": 0.15, "natural": 0.3, "loose": 0.5, "drunk": 0.8},
    "melody_density": {"very_sparse": 0.15, "sparse": 0.30, "medium": 0.50, "busy": 0.70, "very_busy": 0.85},
    "syncopation": {"straight": 0.0, "light": 0.2, "medium": 0.5, "heavy": 0.8},
    "swing": {"none": 0.0, "light": 0.2, "medium": 0.5, "heavy": 0.8},
    "motif_repeat_prob": {"rare": 0.2, "sometimes": 0.5, "often": 0.8},
    "step_bias": {"step": 0.9, "balanced": 0.7, "leapy": 0.4},
    "chromatic_prob": {"none": 0.0, "light": 0.05, "medium": 0.12, "heavy": 0.25},
    "cadence_strength": {"weak": 0.3, "medium": 0.6, "strong": 0.9},
    "chord_change_bars": {"very_slow": 4, "slow": 2, "medium": 1, "fast": 1},
}


@dataclass(frozen=True)
class RenderParams:
    """The config as the renderer reads it: ordinal labels as floats in [0, 1], clamped."""

    tempo: float
    root: str
    mode: str
    brightness: float
    space: float
    density: int
    bass: str
    pad: str
    melody: str
    rhythm: str
    texture: str
    accent: str
    motion: float
    attack: str
    stereo: float
    depth: bool
    echo: float
    human: float
    grain: str
    melody_engine: str
    phrase_len_bars: int
    melody_density: float
    syncopation: float
    swing: float
    motif_repeat_prob: float
    step_bias: float
    chromatic_prob: float
    cadence_strength: float
    register_min_oct: int
    register_max_oct: int
    tension_curve: str
    harmony_style: str
    chord_change_bars: int
    chord_extensions: str

    @property
    def bpm(self) -> float:
        """Beats per minute: 55 + 110·tempo (71.5 … 154 for the five labels)."""
        return 55.0 + 110.0 * self.tempo


def _unit(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def render_params(config: MusicConfigPrompt) -> RenderParams:
    """Turn a validated prompt config into renderer numbers (floats clamped to [0, 1], chord bars ≥ 1,
    density 2–6, octaves 1–8 and swapped if min > max)."""
    raw = config.model_dump()
    values: dict[str, Any] = dict(raw)
    for key, table in ORDINAL_VALUES.items():
        values[key] = table[raw[key]]
    for key in ORDINAL_VALUES:
        if key != "chord_change_bars":
            values[key] = _unit(values[key])
    values["chord_change_bars"] = max(1, int(values["chord_change_bars"]))
    values["density"] = int(min(6, max(2, raw["density"])))
    lo, hi = sorted((int(raw["register_min_oct"]), int(raw["register_max_oct"])))
    values["register_min_oct"], values["register_max_oct"] = max(1, lo), min(8, hi)
    values["phrase_len_bars"] = max(1, int(raw["phrase_len_bars"]))
    return RenderParams(**values)
