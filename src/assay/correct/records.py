"""The trace log of the self-correction engine: one `TraceRecord` per question, one JSON line each.

A trace's `turns[0]` is the initial answer (no action, no context, no reward); `turns[i]` (i >= 1) is
the answer produced by reprompt i. Field names follow the research proposal's schema where it has
one (`turn_id`, `prompt_id`, `prompt_text`, `error_mode`, `confidence_score`, `delta_accuracy`,
`token_count`, `timestamp`, `question_id`, `dataset_name`, `reference_answer`, `total_tokens`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TurnRecord:
    """One answer of an episode.

    prompt_id: the template id (the policy's arm) that produced this answer; None for turn 0.
    style: that template's style; prompt_text: the user message sent (turn 0: the initial prompt).
    answer: the model's raw text; extracted: the checker's key (e.g. GSM8K final number) or None.
    correct/score: the checker against the reference (the learning signal, see docs/correct.md).
    error_mode/confidence_score/context: the predicted context the policy chose this turn's action in.
    delta_accuracy: int(correct) - int(previous correct), in {-1, 0, 1} (0 for turn 0).
    token_count: tokens this turn added (its user message + the answer), the reward's cost term;
    billed_tokens: prompt + completion tokens of the call (the whole conversation is re-sent).
    reward: what `Credit.observe` credited to (context, prompt_id) for this answer; None for turn 0.
    latency_s: seconds the call took (a cache hit: the lookup).
    """

    turn_id: int
    prompt_id: str | None
    style: str | None
    prompt_text: str
    answer: str
    extracted: str | None
    correct: bool
    score: float
    delta_accuracy: int
    token_count: int
    billed_tokens: int
    latency_s: float
    cached: bool
    context: str | None = None
    error_mode: str | None = None
    confidence_score: float | None = None
    reward: float | None = None
    timestamp: str = ""


@dataclass
class TraceRecord:
    """One question's episode.

    row_id = question_id = the dataset's question id (the runner's resume key).
    n_turns: reprompts sent (len(turns) - 1); stopped_by: "policy" (it chose `stop`) or "max_turns".
    failure_mode: `label_with_answers` of the correctness trajectory and the extracted answers.
    updates: every policy update of the episode in order, [{"context", "arm", "reward"}], the final
    `stop` (reward 0) included; the k-th non-stop update (k from 1) is credited for turns[k], the
    answer that its reprompt produced.
    total_tokens: billed tokens of all calls of the episode.
    predictor: what predicted the contexts: "heuristic" or "classifier:<folder name>".
    """

    row_id: str
    question_id: str
    dataset_name: str
    question: str
    reference_answer: str
    turns: list[TurnRecord]
    initial_correct: bool
    final_correct: bool
    failure_mode: str
    n_turns: int
    total_tokens: int
    stopped_by: str
    policy: str
    predictor: str = "heuristic"
    updates: list[dict[str, Any]] = field(default_factory=list)
    pipeline_version: str = ""
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
