"""Failure-mode labels for a self-correction trajectory.

A trajectory is the correctness of answer 0 (the initial answer) followed by the answer after each
correction turn: `[c_0, c_1, ..., c_k]`, k >= 0. The label depends only on three facts:

- `c_0` (right or wrong at the start), `c_k` (right or wrong at the end), and
- `f`, the number of flips: indices i >= 1 with `c_i != c_{i-1}`.

`c_0 == c_k` forces `f` to be even and `c_0 != c_k` forces it odd, so the table below covers every
trajectory exactly once (docs/correct.md gives the reasoning):

| start | end   | flips | label             |
|-------|-------|-------|-------------------|
| right | right | 0     | unchanged_correct |
| wrong | wrong | 0     | anchored          |
| wrong | right | 1     | corrected         |
| right | wrong | 1     | overcorrected     |
| right | right | >= 2  | perfectionism     |
| wrong | wrong | >= 2  | wavering          |
| wrong | right | >= 3  | wavering          |
| right | wrong | >= 3  | wavering          |

`label_with_answers` refines the two flat rows with the answer texts: an all-wrong trajectory whose
(normalised) answer changes is `wavering` rather than `anchored`, and an all-correct one whose answer
changes is `perfectionism` rather than `unchanged_correct`.
"""

from __future__ import annotations

from collections.abc import Sequence

from assay.errors import AssayError

UNCHANGED_CORRECT = "unchanged_correct"
ANCHORED = "anchored"
CORRECTED = "corrected"
OVERCORRECTED = "overcorrected"
WAVERING = "wavering"
PERFECTIONISM = "perfectionism"

FAILURE_MODES: tuple[str, ...] = (ANCHORED, UNCHANGED_CORRECT, CORRECTED, OVERCORRECTED, WAVERING, PERFECTIONISM)


def count_flips(correct: Sequence[bool]) -> int:
    """Number of turns whose correctness differs from the turn before."""
    return sum(1 for prev, cur in zip(correct[:-1], correct[1:], strict=True) if bool(prev) != bool(cur))


def _check(correct: Sequence[bool]) -> list[bool]:
    if len(correct) == 0:
        raise AssayError("cannot label an empty trajectory: it needs at least the initial answer's correctness")
    return [bool(c) for c in correct]


def label_trajectory(correct: Sequence[bool]) -> str:
    """The failure mode of a correctness trajectory `[c_0, ..., c_k]` (one of FAILURE_MODES)."""
    c = _check(correct)
    start, end, flips = c[0], c[-1], count_flips(c)
    if flips == 0:
        return UNCHANGED_CORRECT if start else ANCHORED
    if flips == 1:
        return CORRECTED if end else OVERCORRECTED
    # Two or more flips: coming back to a correct start is perfectionism; anything else oscillates.
    return PERFECTIONISM if start and end else WAVERING


def _normalise(answer: str) -> str:
    return " ".join(str(answer).split()).casefold()


def label_with_answers(correct: Sequence[bool], answers: Sequence[str]) -> str:
    """Like `label_trajectory`, but a flat trajectory whose answer text changes is not 'unchanged'.

    Answers are compared after collapsing whitespace and case-folding; pass extracted answer keys
    (e.g. the final number of a GSM8K answer) to ignore rewording of the same answer.
    - all wrong, one distinct answer -> anchored; several distinct wrong answers -> wavering
    - all right, one distinct answer -> unchanged_correct; several -> perfectionism
    Any trajectory with a flip gets the same label as `label_trajectory`.
    """
    c = _check(correct)
    if len(answers) != len(c):
        raise AssayError(f"label_with_answers needs one answer per turn: got {len(answers)} answers for {len(c)} turns")
    label = label_trajectory(c)
    if count_flips(c) == 0 and len({_normalise(a) for a in answers}) > 1:
        return PERFECTIONISM if c[0] else WAVERING
    return label
