"""The config tree of `assay synth` (one TOML file can hold every step's settings)."""

from __future__ import annotations

from pydantic import Field

from assay.config import Section
from assay.llm.settings import LLMSettings
from assay.pipelines.runner import RunnerSettings
from assay.pipelines.synth.configs import ConfigsConfig
from assay.pipelines.synth.ingest import IngestConfig
from assay.pipelines.synth.score import ScoreConfig
from assay.pipelines.synth.vibes import VibesConfig


class SynthConfig(Section):
    llm: LLMSettings = Field(default_factory=LLMSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    vibes: VibesConfig = Field(default_factory=VibesConfig)
    configs: ConfigsConfig = Field(default_factory=ConfigsConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
