"""Build valid trace records for tests without running the engine (records.py's current format)."""

from __future__ import annotations

from typing import Any

from assay.correct.failure_modes import label_with_answers
from assay.correct.records import TraceRecord, TurnRecord, make_trace_id

STAMP = "2024-01-10T14:30:00Z"


def make_trace(
    turns: list[tuple[str, str | None, bool]], qid: str = "q1", question: str = "Q?", run_tag: str = "t0"
) -> TraceRecord:
    """A trace whose turns are (answer text, extracted key, correct); 10 tokens per turn."""
    records = []
    for i, (answer, key, correct) in enumerate(turns):
        prev = turns[i - 1][2] if i else correct
        records.append(
            TurnRecord(
                turn_id=i,
                question=question,
                answer=answer,
                prompt_id=None if i == 0 else "step_redo",
                prompt_text="Q" if i == 0 else "Redo it.",
                error_mode="anchored",
                confidence_score=0.5,
                delta_accuracy=int(correct) - int(prev),
                token_count=10,
                timestamp=STAMP,
                extracted=key,
                correct=correct,
                score=float(correct),
                billed_tokens=10 * (i + 1),
                latency_s=0.0,
                cached=False,
            )
        )
    correct = [c for _, _, c in turns]
    updates: list[dict[str, Any]] = [
        {"context": "anchored|<0.7|t1", "arm": "step_redo", "reward": float(c - p)}
        for p, c in zip(correct, correct[1:], strict=False)
    ]
    return TraceRecord(
        trace_id=make_trace_id(run_tag, qid),
        dataset_name="gsm8k",
        question_id=qid,
        reference_answer="5",
        turns=records,
        final_accuracy=int(correct[-1]),
        total_tokens=sum(t.billed_tokens for t in records),
        total_turns=len(records),
        pipeline_version="0.1.0",
        created_at=STAMP,
        row_id=qid,
        question=question,
        initial_correct=correct[0],
        failure_mode=label_with_answers(correct, [k or a for a, k, _ in turns]),
        stopped_by="max_turns",
        policy="fixed",
        updates=updates,
    )
