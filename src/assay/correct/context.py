"""The policy's context before a reprompt, predicted without the reference answer: the heuristic
predictor (the default) and the answer features it shares with the trained classifier
(classifier.py).

A predictor maps (question, [(answer text, extracted key or None), ...], turn) -> (failure mode,
confidence); see docs/correct.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from assay.correct.failure_modes import ANCHORED, CORRECTED, FAILURE_MODES, WAVERING

Predictor = Callable[[str, list[tuple[str, str | None]], int], tuple[str, float]]


_HEDGES = re.compile(
    r"\b(maybe|might|perhaps|possibly|probably|not sure|unsure|i think|i believe|guess|approximately|"
    r"likely|could be|uncertain|seems?)\b",
    re.IGNORECASE,
)


def answer_keys(answers: list[tuple[str, str | None]]) -> list[str]:
    """Each answer's extracted key, or its whitespace-collapsed, case-folded text when it has none."""
    return [key if key is not None else " ".join(text.split()).casefold() for text, key in answers]


def count_changes(keys: list[str]) -> int:
    """How often consecutive answer keys differ."""
    return sum(a != b for a, b in zip(keys, keys[1:], strict=False))


def hedges(text: str) -> set[str]:
    """The distinct hedging phrases ("maybe", "i think", ...) in `text`, lowercased."""
    return {m.lower() for m in _HEDGES.findall(text)}


def predict_context(question: str, answers_so_far: list[tuple[str, str | None]], turn: int) -> tuple[str, float]:
    """The heuristic (failure mode, confidence) before reprompt `turn` (1-based), used when no trained
    classifier is given (`correct.classifier`, see classifier.py); it never looks at the reference.
    `answers_so_far` = [(raw text, extracted key or None), ...].
    - mode: from how often the extracted answer changed so far (k changes): k = 0 -> "anchored" (the
      model holds its answer), k = 1 -> "corrected" (it moved once), k >= 2 -> "wavering".
    - confidence: 0.9, minus 0.2 per distinct hedging phrase in the last answer, minus 0.1 per change,
      0.2 when no answer could be extracted; clipped to [0.05, 0.95].
    """
    changes = count_changes(answer_keys(answers_so_far))
    mode = ANCHORED if changes == 0 else CORRECTED if changes == 1 else WAVERING
    assert mode in FAILURE_MODES
    last_text, last_key = answers_so_far[-1]
    if last_key is None:
        return mode, 0.2
    confidence = 0.9 - 0.2 * len(hedges(last_text)) - 0.1 * changes
    return mode, min(0.95, max(0.05, confidence))
