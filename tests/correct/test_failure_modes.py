"""Failure-mode labels: every trajectory up to length 5 gets exactly one label, matching its definition."""

from __future__ import annotations

import itertools

import pytest

from assay.correct.failure_modes import (
    FAILURE_MODES,
    count_flips,
    label_trajectory,
    label_with_answers,
)
from assay.errors import AssayError

ALL = [list(t) for n in range(1, 6) for t in itertools.product([False, True], repeat=n)]


def _definitions(c: list[bool]) -> set[str]:
    """Each mode's definition written independently of the implementation; returns every mode that holds."""
    flips = sum(c[i] != c[i - 1] for i in range(1, len(c)))
    first_right = next((i for i, x in enumerate(c) if x), None)
    holds = set()
    if all(c):
        holds.add("unchanged_correct")
    if not any(c):
        holds.add("anchored")
    if not c[0] and c[-1] and all(c[first_right:]):
        holds.add("corrected")
    if c[0] and not c[-1] and all(c[: c.index(False)]) and not any(c[c.index(False) :]):
        holds.add("overcorrected")
    if c[0] and c[-1] and not all(c):
        holds.add("perfectionism")
    if flips >= 2 and not (c[0] and c[-1]):
        holds.add("wavering")
    return holds


def test_every_trajectory_up_to_length_5_has_exactly_one_label():
    assert len(ALL) == 2 + 4 + 8 + 16 + 32
    seen = set()
    for c in ALL:
        holds = _definitions(c)
        assert len(holds) == 1, (c, holds)
        label = label_trajectory(c)
        assert label in FAILURE_MODES
        assert {label} == holds, (c, label, holds)
        seen.add(label)
    assert seen == set(FAILURE_MODES)


@pytest.mark.parametrize(
    ("traj", "label"),
    [
        ("R", "unchanged_correct"),
        ("W", "anchored"),
        ("RRRR", "unchanged_correct"),
        ("WWWW", "anchored"),
        ("WR", "corrected"),
        ("WWWRR", "corrected"),
        ("RW", "overcorrected"),
        ("RRWW", "overcorrected"),
        ("RWR", "perfectionism"),
        ("RWRWR", "perfectionism"),
        ("WRW", "wavering"),
        ("WRWR", "wavering"),
        ("RWRW", "wavering"),
    ],
)
def test_named_examples(traj, label):
    assert label_trajectory([ch == "R" for ch in traj]) == label


def test_flip_count():
    assert count_flips([True]) == 0
    assert count_flips([False, True, True, False]) == 2


def test_answers_separate_repeated_from_changing_answers():
    assert label_with_answers([False, False, False], ["41", " 41", "41 "]) == "anchored"
    assert label_with_answers([False, False, False], ["41", "40", "41"]) == "wavering"
    assert label_with_answers([True, True], ["Paris", "paris"]) == "unchanged_correct"
    assert label_with_answers([True, True], ["42", "42.0"]) == "perfectionism"
    # Trajectories with a flip keep their correctness-only label, whatever the texts.
    for c in ALL:
        if count_flips(c) > 0:
            assert label_with_answers(c, [str(i) for i in range(len(c))]) == label_trajectory(c)


def test_bad_input_is_a_one_line_error():
    with pytest.raises(AssayError, match="empty trajectory"):
        label_trajectory([])
    with pytest.raises(AssayError, match="one answer per turn"):
        label_with_answers([True, False], ["a"])
