"""The trace log of the self-correction engine, `traces.jsonl`: one `TraceRecord` per question, one
JSON line each. This module is its data contract: the engine writes these models, and every reader
(summary, plots, the classifier, the policy on --resume) reads through `read_traces` / `as_trace`.

The field names are those of the design document's TraceRecord and TurnRecord (`SEED_TRACE_FIELDS`,
`SEED_TURN_FIELDS`), followed by assay's own fields. A trace's `turns[0]` is the initial answer;
`turns[i]` (i >= 1) is the answer produced by reprompt i, so `total_turns = len(turns)` counts the
initial answer too (reprompts sent = total_turns - 1).

Old traces (written before the names were aligned: `final_correct`, `n_turns` = reprompts, no
`trace_id`, no per-turn `question`, and a turn's `error_mode`/`confidence_score` describing the
answer before it) are upgraded when read (`_upgrade_old_trace`); nothing rewrites them on disk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from assay.config import error_message, error_path
from assay.correct.failure_modes import FAILURE_MODES
from assay.errors import DataError
from assay.io import jsonl_rows

# The design document's names (docs/correct.md, "Trace format"); written traces carry all of them.
SEED_TRACE_FIELDS = (
    "trace_id",
    "dataset_name",
    "question_id",
    "reference_answer",
    "turns",
    "final_accuracy",
    "total_tokens",
    "total_turns",
    "pipeline_version",
    "created_at",
)
SEED_TURN_FIELDS = (
    "turn_id",
    "question",
    "answer",
    "prompt_id",
    "prompt_text",
    "error_mode",
    "confidence_score",
    "delta_accuracy",
    "token_count",
    "timestamp",
)
LEGACY_TRACE_ID = "legacy"  # the run tag of an old trace read without its run's tag


def utc_now() -> str:
    """Now as ISO-8601 UTC to the second, e.g. "2024-01-10T14:30:05Z" (the design document's form)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_trace_id(run_tag: str, question_id: str) -> str:
    """`<run tag>:<question id>`: the episode's id, and the key under which the policy records that
    it applied the episode's updates (`policy.applied`)."""
    return f"{run_tag}:{question_id}"


def _iso_timestamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (expected UTC, e.g. 2024-01-10T14:30:05Z)")
    return value


class TurnRecord(BaseModel):
    """One answer of an episode.

    Design-document fields: turn_id; question; answer (the model's raw text); prompt_id (the template
    id, the policy's arm, that produced this answer; None for turn 0); prompt_text (the user message
    sent; turn 0: the initial prompt); error_mode/confidence_score (the predictor's failure mode of the
    episode so far and confidence that this answer is right, predicted after this answer without the
    reference); delta_accuracy = int(correct) - int(previous correct) in {-1, 0, 1} (0 for turn 0);
    token_count (tokens this turn added: its user message + the answer, the reward's cost term);
    timestamp (ISO-8601 UTC).
    assay's fields: style (the template's style); extracted (the checker's key, e.g. the GSM8K final
    number, or None); correct/score (the checker against the reference, the learning signal);
    billed_tokens (prompt + completion tokens of the call: the whole conversation is re-sent);
    latency_s (seconds the call took; a cache hit: the lookup); cached; context (the policy context
    key that this turn's prompt_id was chosen in, i.e. from the previous answer's prediction; None
    for turn 0); reward (what was credited to (context, prompt_id) for this answer; None for turn 0).
    """

    model_config = ConfigDict(extra="ignore")

    turn_id: int = Field(ge=0)
    question: str
    answer: str
    prompt_id: str | None
    prompt_text: str
    # None only in an old trace's last turn (its prediction was never made or not logged)
    error_mode: str | None
    confidence_score: float | None = Field(ge=0, le=1)
    delta_accuracy: Literal[-1, 0, 1]
    token_count: int = Field(ge=0)
    timestamp: str
    style: str | None = None
    extracted: str | None
    correct: bool
    score: float
    billed_tokens: int = Field(ge=0)
    latency_s: float
    cached: bool
    context: str | None = None
    reward: float | None = None

    _timestamp = field_validator("timestamp")(_iso_timestamp)


class UpdateRecord(BaseModel):
    """One policy update of an episode: `reward` credited to (`context`, `arm`); whether the answer
    before the decision was right, whether the one after it is (STOP: the same) and the reprompt's
    tokens (STOP: 0). Traces written before the last three were logged lack them."""

    model_config = ConfigDict(extra="ignore")

    context: str
    arm: str
    reward: float
    prev_correct: bool | None = None
    new_correct: bool | None = None
    tokens: int | None = None


class TraceRecord(BaseModel):
    """One question's episode.

    Design-document fields: trace_id (`make_trace_id(run tag, question_id)`, see docs/correct.md);
    dataset_name; question_id (the dataset's question id); reference_answer; turns; final_accuracy
    (1 if the last answer is right, else 0); total_tokens (billed tokens of all calls of the
    episode); total_turns (= len(turns), the initial answer included); pipeline_version (assay's
    version); created_at (ISO-8601 UTC, when the trace was finished).
    assay's fields: row_id (= question_id, the pipeline runner's resume key); question;
    initial_correct; failure_mode (`label_with_answers` of the correctness trajectory and the
    extracted answers); stopped_by ("policy": it chose `stop`, or "max_turns"); policy (its kind);
    predictor ("heuristic" or "classifier:<folder name>"); updates (every policy update of the
    episode in order, the final `stop` (reward 0) included; the k-th non-stop update (k from 1) is
    credited for turns[k], the answer its reprompt produced).
    """

    model_config = ConfigDict(extra="ignore")

    trace_id: str = Field(min_length=1)
    dataset_name: str
    question_id: str
    reference_answer: str
    turns: list[TurnRecord] = Field(min_length=1)
    final_accuracy: int
    total_tokens: int = Field(ge=0)
    total_turns: int = Field(ge=1)
    pipeline_version: str
    created_at: str
    row_id: str
    question: str
    initial_correct: bool
    failure_mode: str
    stopped_by: Literal["policy", "max_turns"]
    policy: str
    predictor: str = "heuristic"
    updates: list[UpdateRecord] = Field(default_factory=list)

    _created_at = field_validator("created_at")(_iso_timestamp)

    @field_validator("final_accuracy", mode="before")
    @classmethod
    def _zero_or_one(cls, value: Any) -> Any:
        if value not in (0, 1) or isinstance(value, float):
            raise ValueError(f"must be 0 or 1, got {value!r}")
        return int(value)

    @field_validator("failure_mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in FAILURE_MODES:
            raise ValueError(f"{value!r} is not one of {', '.join(FAILURE_MODES)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, Mapping) and "final_accuracy" not in data and "final_correct" in data:
            run_tag = (info.context or {}).get("run_tag") or LEGACY_TRACE_ID
            return _upgrade_old_trace(dict(data), run_tag)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TraceRecord:
        if self.total_turns != len(self.turns):
            raise ValueError(f"total_turns is {self.total_turns} but there are {len(self.turns)} turns")
        if [t.turn_id for t in self.turns] != list(range(len(self.turns))):
            raise ValueError("turn ids must be 0, 1, 2, ... in order")
        if self.final_accuracy != int(self.turns[-1].correct):
            last = "right" if self.turns[-1].correct else "wrong"
            raise ValueError(f"final_accuracy is {self.final_accuracy} but the last answer is {last}")
        return self

    @property
    def reprompts(self) -> int:
        """Reprompts sent (total_turns - 1)."""
        return self.total_turns - 1

    def to_dict(self) -> dict[str, Any]:
        """The JSON line's object: the design document's fields first, then assay's."""
        return self.model_dump(mode="json")


def _upgrade_old_trace(data: dict[str, Any], run_tag: str) -> dict[str, Any]:
    """An old trace's fields under the current names and meanings (see the module docstring).

    - final_correct (bool) -> final_accuracy (0/1); n_turns (reprompts) -> total_turns = n_turns + 1
    - trace_id = make_trace_id(run_tag, question_id): with the run's tag (as on --resume) it is the
      key the old engine gave the episode in the policy's `applied` set
    - turns get the trace's question; a turn's error_mode/confidence_score move one turn back (the
      old engine logged the prediction on the turn that the prediction's reprompt produced); the last
      turn keeps the mode of a final `stop` (its confidence was not logged) or None.
    """
    out = dict(data)
    out["final_accuracy"] = int(bool(out.pop("final_correct")))
    if "n_turns" in out and "total_turns" not in out:
        n_turns = out.pop("n_turns")
        out["total_turns"] = n_turns + 1 if isinstance(n_turns, int) and not isinstance(n_turns, bool) else n_turns
    question_id = out.get("question_id", out.get("row_id"))
    out.setdefault("question_id", question_id)
    out.setdefault("row_id", question_id)
    if "trace_id" not in out and isinstance(question_id, str):
        out["trace_id"] = make_trace_id(run_tag, question_id)
    turns = out.get("turns")
    if isinstance(turns, list) and all(isinstance(t, Mapping) for t in turns):
        turns = [dict(t) for t in turns]
        later = [(t.get("error_mode"), t.get("confidence_score")) for t in turns[1:]]
        updates = out.get("updates")
        last_update = updates[-1] if isinstance(updates, list) and updates else None
        if isinstance(last_update, Mapping) and last_update.get("arm") == "stop":
            later.append((str(last_update.get("context", "")).split("|")[0] or None, None))
        else:
            later.append((None, None))
        for turn, (mode, confidence) in zip(turns, later, strict=True):
            turn.setdefault("question", out.get("question"))
            turn["error_mode"], turn["confidence_score"] = mode, confidence
        out["turns"] = turns
    return out


def as_trace(trace: TraceRecord | Mapping[str, Any], run_tag: str | None = None) -> TraceRecord:
    """A trace (old or current format, a dict or a TraceRecord) as a validated TraceRecord; a
    pydantic ValidationError if it is not one (`read_traces` turns that into a one-line DataError)."""
    if isinstance(trace, TraceRecord):
        return trace
    return TraceRecord.model_validate(trace, context={"run_tag": run_tag})


def read_traces(path: str | Path, run_tag: str | None = None) -> Iterator[TraceRecord]:
    """The traces of a `traces.jsonl` (old or current format), streamed. `run_tag`: the run that
    wrote the file, for old traces' trace_id (else `legacy:<question id>`). A record that is not a
    trace is a one-line DataError naming the file and line."""
    for lineno, row in jsonl_rows(path):
        try:
            yield as_trace(row, run_tag)
        except ValidationError as exc:
            raise DataError(f"{path} line {lineno} is not a trace of `assay correct run`: {_problems(exc)}") from None


def _problems(exc: ValidationError, limit: int = 3) -> str:
    """A record's validation errors on one line: the missing fields together, then the first others."""

    def where(err: Any) -> str:
        path = error_path(err, root="")
        return f"{path}: " if path else ""

    errors = exc.errors()
    missing = [error_path(e) for e in errors if e["type"] == "missing"]
    others = list(dict.fromkeys(f"{where(e)}{error_message(e)}" for e in errors if e["type"] != "missing"))
    parts = []
    if missing:
        shown = ", ".join(missing[: 2 * limit])
        parts.append(f"missing {shown}" + (f" and {len(missing) - 2 * limit} more" if len(missing) > 2 * limit else ""))
    parts += others[:limit]
    text = "; ".join(parts) + (f" (and {len(others) - limit} more)" if len(others) > limit else "")
    return " ".join(text.split())
