"""The config tree of `assay synth` (one TOML file can hold every step's settings)."""

from __future__ import annotations

from pydantic import Field, model_validator

from assay.config import Section
from assay.llm.settings import LLMSettings
from assay.pipeline.runner import RunnerSettings
from assay.synth.ingest import IngestConfig
from assay.synth.music_configs import MusicConfigsConfig
from assay.synth.score import ScoreConfig
from assay.synth.vibes import VibesConfig
from assay.tracking import TrackingSettings


class SynthConfig(Section):
    llm: LLMSettings = Field(default_factory=LLMSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    vibes: VibesConfig = Field(default_factory=VibesConfig)
    configs: MusicConfigsConfig = Field(default_factory=MusicConfigsConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    log: TrackingSettings = Field(default_factory=TrackingSettings)

    @model_validator(mode="after")
    def _share_log(self):
        self.runner.tracking = self.log  # the step runner tracks the summary (assay.pipeline.step)
        return self
