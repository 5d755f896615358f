"""The offline audio scorer: how well does the *sound* of a config fit its vibe?

CLAP (the original's audio-text model) is not available offline, so the agreement is computed
from the rendered audio itself, in three steps:

1. render the config (`assay.music.render`, `duration` seconds, fixed seed);
2. measure the audio (`assay.music.features.measure`: tempo, spectral centroid, loudness, onset
   density, ...) and turn the measurements into a fixed-vocabulary English description
   (`assay.music.features.describe`, e.g. "slow, dark, quiet and sparse ambient music ...");
3. `final_score` = MiniLM cosine similarity between the vibe and that description.

The score therefore rewards configs whose *measurable* character (pace, brightness, loudness,
busyness) matches the words of the vibe; it cannot hear melody or emotion beyond those.
"""

from __future__ import annotations

from typing import Any

from assay.synth.scorers.base import Scorer


class AudioScorer(Scorer):
    name = "audio"

    def __init__(self, duration: float = 8.0, seed: int = 0):
        self.duration, self.seed = duration, seed

    def describe(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(description of the rendered audio, measured features) for a payload or bare config."""
        from assay.music import describe, load_music_json, measure, render

        config, _ = load_music_json(payload)
        audio = render(config, duration=self.duration, seed=self.seed)
        features = measure(audio, 44100)
        return describe(features), features.to_dict()

    def score(self, vibe: str, payload: dict[str, Any]) -> dict[str, Any]:
        from assay.embeddings import similarity

        description, features = self.describe(payload)
        return {"final_score": similarity(vibe, description), "description": description, "features": features}
