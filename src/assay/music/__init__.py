"""Music configs (docs/music.md): what an LLM fills in for a vibe and a deterministic renderer that
turns it into audio.

    config.py    the 34-field config (labels), its validation, JSON helpers
    payload.py   the LLM-facing payload (thinking, title, config, palettes): JSON Schema, validity
                 checks on raw model text, repair
    params.py    labels -> the numbers the renderer reads (RenderParams)
    render.py    config -> audio (WAV), built from theory.py (pitches, chords, melodies), dsp.py
                 (oscillators, envelopes, filters) and layers.py (bass, pad, melody, rhythm, ...)
    features.py  audio measurements and a plain-English description
    retrieval.py the vibe -> config map (`assay music map / suggest`)
"""

from assay.music.config import MusicConfigError, MusicConfigPrompt, allowed_values, loads_json, parse_config
from assay.music.features import AudioFeatures, describe, measure
from assay.music.payload import (
    MusicConfigPromptPayload,
    load_music_json,
    parse_payload,
    payload_json_schema,
    sanitize_payload,
    validity,
)
from assay.music.render import SAMPLE_RATE, render, write_wav
from assay.music.retrieval import RetrievalMap, build_map, random_payload

__all__ = [
    "SAMPLE_RATE",
    "AudioFeatures",
    "MusicConfigError",
    "MusicConfigPrompt",
    "MusicConfigPromptPayload",
    "RetrievalMap",
    "allowed_values",
    "build_map",
    "describe",
    "load_music_json",
    "loads_json",
    "measure",
    "parse_config",
    "parse_payload",
    "payload_json_schema",
    "random_payload",
    "render",
    "sanitize_payload",
    "validity",
    "write_wav",
]
