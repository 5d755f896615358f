"""The config tree of `assay correct` (one TOML file can hold every subcommand's settings):

    [llm]          model, api_base, cache, max_concurrency, ...   (assay.llm.settings.LLMSettings)
    [runner]       limit, resume, overwrite, max_error_rate, ...   (assay.pipeline.runner.RunnerSettings)
    [correct]      dataset, data, policy, max_turns, lam, classifier, ...   (one run: `assay correct run`)
    [compare]      policies, fixed_template, learned_state         (`assay correct compare`)
    [classifier]   hidden, epochs, lr, val_fraction, ...           (`assay correct train-classifier`)

`policy = "none"` (the issue's name for "never reprompt") reads as None in a TOML file or `--set`
(assay's config convention); None and "never" mean the same policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from assay.config import Section
from assay.llm.settings import LLMSettings
from assay.pipeline.runner import RunnerSettings
from assay.tracking import TrackingSettings

PolicyName = Literal["ucb", "thompson", "shared", "epsilon", "never", "fixed", "random"]
# config name -> Policy.kind
POLICY_KINDS = {
    "ucb": "ucb",
    "thompson": "thompson",
    "shared": "shared",
    "epsilon": "epsilon_greedy",
    "never": "never",
    "fixed": "fixed",
    "random": "random",
}


def _none_is_never(value: object) -> object:
    return "never" if value is None or value == "none" else value


class CorrectConfig(Section):
    dataset: Literal["gsm8k", "hotpotqa", "boolq", "csv", "jsonl"] = "gsm8k"
    data: Path | None = Field(None, description="Question file; None: the shipped sample (gsm8k/hotpotqa/boolq).")
    checker: str | None = Field(None, description="Checker spec (gsm8k, hotpotqa, boolq, exact, file.py:fn).")
    policy: PolicyName = Field(
        "ucb", description="ucb (the default learner), thompson, shared, epsilon, never (or none), fixed, random."
    )
    template: str | None = Field(None, description="Template id for policy = fixed.")
    templates: Path | None = Field(None, description="Template library TOML; None: the shipped one.")
    max_turns: int = Field(3, ge=0, le=20, description="Reprompts per question at most.")
    lam: float = Field(0.001, ge=0, description="Reward cost per token (r = delta correct - lam * tokens).")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(512, ge=16, description="Tokens per answer at most.")
    seed: int = 0
    policy_state: Path | None = Field(None, description="Policy JSON; None: OUT/policy.json. Reloaded if present.")
    policy_init: Path | None = Field(
        None, description="A new policy state starts as a copy of this saved policy (the file is never modified)."
    )
    classifier: Path | None = Field(
        None, description="Failure-mode/confidence classifier folder (train-classifier); None: the heuristic."
    )
    plots: bool = Field(True, description="Write OUT/plots/*.png.")

    _never = field_validator("policy", mode="before")(_none_is_never)

    @property
    def policy_kind(self) -> str:
        return POLICY_KINDS[self.policy]


class CompareConfig(Section):
    policies: list[PolicyName] = Field(
        default_factory=lambda: ["never", "fixed", "random", "ucb"],
        description="Policies run on the same questions, in this order (each in OUT/<policy>/).",
    )
    fixed_template: str = Field("step_redo", description="The template of the fixed policy.")
    learned_state: Path | None = Field(
        None, description="Start the learning policies from this saved state (copied, never modified)."
    )

    @field_validator("policies", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        return [_none_is_never(v) for v in value] if isinstance(value, list) else value

    @field_validator("policies")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError("give one or more distinct policies")
        return value


class ClassifierConfig(Section):
    hidden: int = Field(128, ge=4, description="Width of the shared hidden layer.")
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(300, ge=1, description="Full-batch epochs.")
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-3, ge=0)
    val_fraction: float = Field(0.25, gt=0, lt=1, description="Share of questions held out for the metrics.")
    seed: int = 0


class CorrectRun(Section):
    llm: LLMSettings = Field(default_factory=LLMSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    correct: CorrectConfig = Field(default_factory=CorrectConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    log: TrackingSettings = Field(default_factory=TrackingSettings)

    @model_validator(mode="after")
    def _share_log(self):
        self.runner.tracking = self.log  # the step runner tracks the summary (assay.pipeline.step)
        return self
