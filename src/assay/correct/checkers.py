"""Answer checkers: is a model's free-text prediction right for a dataset's reference answer?

    checker.check(prediction: str, reference: str) -> CheckResult(correct, score, extracted, detail)

`score` is in [0, 1] for the built-in checkers (1.0/0.0 except HotpotQA token F1); `extracted` is the
answer read out of the prediction (None when none could be found, which is never correct).

Extraction of the answer part of a prediction (all checkers): if the prediction contains `####` the
text after the last one is used; otherwise, if it contains "answer is" or "answer:" (any case) the
text after the last such phrase; otherwise the whole prediction. Then:

    gsm8k     the first number of that part (when it opens with a calculation, "2 * 1.5 = 3 bolts", the
              first number after the calculation), or with no marker the LAST number of the whole text;
              `$`, `%`, thousands commas ("1,800"), units and a trailing period are ignored; "-3",
              "2.5", "3/4" are numbers; compared numerically (abs/rel tolerance 1e-6). A whole-number
              match only: "142" never matches "42".
    hotpotqa  the first line of that part, cut at the first sentence end (". " / "." at the end),
              quotes and markdown emphasis stripped; with no marker, the last non-empty line. SQuAD
              normalisation (lowercase, drop punctuation and the articles a/an/the, squeeze spaces);
              correct on exact match, score = token F1 (the official HotpotQA rule: a yes/no answer
              on either side gets F1 0 unless both are equal). For a yes/no reference the prediction
              is read as in `boolq`.
    boolq     the first of yes/no/true/false (as a whole word, any case) in that part; "true" = "yes".
    exact     SQuAD-normalised exact match of the hotpotqa-style extraction (for custom data).

`load_checker(spec)` takes one of those names or `path/to/file.py:function` for a custom
`function(prediction: str, reference: str) -> bool | float | dict` (see `CustomChecker`).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from assay.errors import AssayError, ConfigError
from assay.plugins import load_function

TOLERANCE = 1e-6
_MARKER = re.compile(r"answer\s+is\b\s*:?|answer\s*:", re.IGNORECASE)
# A number: optional sign (not a hyphen between two tokens: "16-3" is 16 and 3), thousands-grouped or
# plain digits, an optional decimal part, and an optional "/denominator" for fractions.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−])?\$?(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?(?:/(?P<den>\d+)(?![\d.]))?"
    r"|(?<![\w.\d])(?P<sign2>[-−])?\$?(?P<dot>\.\d+)"
)
_BOOL_WORD = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation) | {"“", "”", "‘", "’", "–", "—"}
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "mt", "vs", "etc", "co", "inc", "ltd", "u.s"}
_YESNO = {"yes", "no", "noanswer"}


class CheckerError(AssayError):
    """A checker is misconfigured, or a reference / custom checker result is unusable."""


@dataclass(frozen=True)
class CheckResult:
    correct: bool
    score: float
    extracted: str | None
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Checker(Protocol):
    name: str

    def check(self, prediction: str, reference: str) -> CheckResult: ...


def answer_part(text: str) -> tuple[str, bool]:
    """(the text after the last `####` or "answer is"/"answer:", True) or (text, False) without one."""
    _, sep, tail = text.rpartition("####")
    if sep:
        return tail, True
    matches = list(_MARKER.finditer(text))
    if matches:
        return text[matches[-1].end() :], True
    return text, False


# --- GSM8K ------------------------------------------------------------------------------------


# an arithmetic calculation at the start of the answer part: "2 * 1.5 =", "$12 - 4 = 8 / 2 ="
_CALCULATION = re.compile(r"^(?:[ \t$\d.,()+\-*/×÷x]+=)+")


def parse_numbers(text: str) -> list[Fraction]:
    """Every number in `text`, in order, as exact fractions ("1,800" -> 1800, "$-3" / "-$3" -> -3,
    "2.50" -> 5/2, "3/4" -> 3/4). A division by zero ("1/0") is read as the numerator alone."""
    numbers = []
    for m in _NUMBER.finditer(text):
        if m.group("dot") is not None:
            value = Fraction(m.group("dot"))
            sign = m.group("sign2")
        else:
            value = Fraction(m.group("int").replace(",", "") + (m.group("frac") or ""))
            den = m.group("den")
            if den is not None and int(den) != 0:
                value /= int(den)
            sign = m.group("sign")
        numbers.append(-value if sign else value)
    return numbers


def _format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return repr(float(value))


def _numbers_equal(a: Fraction, b: Fraction) -> bool:
    return math.isclose(float(a), float(b), rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def extract_final_number(text: str) -> Fraction | None:
    """GSM8K rule: the first number after the last `####` / "answer is" / "answer:" marker (after the
    calculation it opens with: "The answer is 2 * 1.5 = 6 / 2 = 3" -> 3); with no
    marker (or no number after it) the last number of the whole text; None if there is none."""
    part, marked = answer_part(text)
    if marked:
        calc = _CALCULATION.match(part.lstrip())
        if calc:
            numbers = parse_numbers(part.lstrip()[calc.end() :])
            if numbers:
                return numbers[0]
        numbers = parse_numbers(part)
        if numbers:
            return numbers[0]
    numbers = parse_numbers(text)
    return numbers[-1] if numbers else None


class GSM8KChecker:
    name = "gsm8k"

    def check(self, prediction: str, reference: str) -> CheckResult:
        ref = extract_final_number(reference)
        if ref is None:
            raise CheckerError(f"gsm8k reference {reference[:60]!r} holds no number")
        got = extract_final_number(prediction or "")
        detail = {"reference": _format_number(ref)}
        if got is None:
            return CheckResult(False, 0.0, None, detail)
        correct = _numbers_equal(got, ref)
        return CheckResult(correct, float(correct), _format_number(got), detail)


# --- HotpotQA / exact -------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation, drop articles a/an/the, squeeze whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of the normalised strings (1.0 for two empty strings)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _first_sentence(text: str) -> str:
    """Text up to the first sentence-ending period (". " or a final "."), skipping abbreviations and
    initials ("Mr.", "J. R. R. Tolkien", "D.C.")."""
    for m in re.finditer(r"\.(?=\s|$)", text):
        word = text[: m.start()].split()[-1:] or [""]
        last = word[0].lower().strip(string.punctuation)
        if len(last) <= 1 or last in _ABBREVIATIONS or "." in word[0]:
            continue
        return text[: m.start()]
    return text


def extract_short_answer(prediction: str) -> str:
    """The answer part of a free-text prediction (rule in the module docstring), not yet normalised."""
    part, marked = answer_part(prediction or "")
    lines = [line.strip() for line in part.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[0] if marked else lines[-1]
    line = _first_sentence(line).strip().strip("*_`\"'“”‘’ ").strip()
    return line


class ExactChecker:
    name = "exact"

    def check(self, prediction: str, reference: str) -> CheckResult:
        extracted = extract_short_answer(prediction)
        if not extracted:
            return CheckResult(False, 0.0, None, {})
        correct = normalize_answer(extracted) == normalize_answer(reference)
        return CheckResult(correct, float(correct), extracted, {"normalized": normalize_answer(extracted)})


class HotpotQAChecker:
    name = "hotpotqa"

    def check(self, prediction: str, reference: str) -> CheckResult:
        ref_norm = normalize_answer(reference)
        if ref_norm in ("yes", "no"):
            extracted = extract_yes_no(prediction)
        else:
            extracted = extract_short_answer(prediction) or None
        if extracted is None:
            return CheckResult(False, 0.0, None, {"em": 0.0, "f1": 0.0})
        pred_norm = normalize_answer(extracted)
        em = float(pred_norm == ref_norm)
        # Official HotpotQA eval: partial token overlap never counts for yes/no/noanswer answers.
        if (pred_norm in _YESNO or ref_norm in _YESNO) and pred_norm != ref_norm:
            f1 = 0.0
        else:
            f1 = token_f1(pred_norm, ref_norm)
        return CheckResult(bool(em), f1, extracted, {"em": em, "f1": f1})


# --- BoolQ ------------------------------------------------------------------------------------


def extract_yes_no(text: str | None) -> str | None:
    """ "yes"/"no" from the first yes/no/true/false word after the answer marker (else in the whole
    text); None when there is none."""
    if not text:
        return None
    part, marked = answer_part(text)
    m = _BOOL_WORD.search(part) if marked else None
    m = m or _BOOL_WORD.search(text)
    if m is None:
        return None
    return "yes" if m.group(1).lower() in ("yes", "true") else "no"


class BoolQChecker:
    name = "boolq"

    def check(self, prediction: str, reference: str) -> CheckResult:
        ref = normalize_answer(reference)
        ref = {"true": "yes", "false": "no"}.get(ref, ref)
        if ref not in ("yes", "no"):
            raise CheckerError(f"boolq reference must be yes/no/true/false, got {reference[:60]!r}")
        got = extract_yes_no(prediction)
        correct = got == ref
        return CheckResult(correct, float(correct), got, {"reference": ref})


# --- custom checkers and lookup ---------------------------------------------------------------


class CustomChecker:
    """`path/to/file.py:function` with `function(prediction: str, reference: str)` returning:
    a bool (correct; score 1.0/0.0), a number (score; correct only at full credit, score >= 1), or a
    dict with a bool "correct" and optional "score" (finite number, default 1.0/0.0), "extracted"
    (str or None) and any other keys (kept as detail). The file is imported once and the signature
    checked up front; every result is validated."""

    def __init__(self, spec: str):
        signature = "(prediction: str, reference: str) -> bool | float | dict"
        self.func = load_function(spec, "checker", ("prediction", "reference"), signature, CheckerError)
        self.name = spec

    def check(self, prediction: str, reference: str) -> CheckResult:
        try:
            result = self.func(prediction, reference)
        except Exception as exc:
            raise CheckerError(f"custom checker {self.name} raised {type(exc).__name__}: {exc}") from None
        return self._validate(result)

    def _validate(self, result: Any) -> CheckResult:
        if isinstance(result, bool):
            return CheckResult(result, float(result), None, {})
        if isinstance(result, int | float):
            score = self._score(result)
            return CheckResult(score >= 1.0, score, None, {})
        if not isinstance(result, dict):
            raise CheckerError(
                f"custom checker {self.name} returned {type(result).__name__}, not a bool, number or dict"
            )
        if not isinstance(result.get("correct"), bool):
            raise CheckerError(f"custom checker {self.name} returned a dict without a bool 'correct'")
        correct = result["correct"]
        score = self._score(result["score"]) if "score" in result else float(correct)
        extracted = result.get("extracted")
        if extracted is not None and not isinstance(extracted, str):
            raise CheckerError(f"custom checker {self.name}: 'extracted' must be a str or None")
        detail = {k: v for k, v in result.items() if k not in ("correct", "score", "extracted")}
        return CheckResult(correct, score, extracted, detail)

    def _score(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise CheckerError(f"custom checker {self.name} returned score {value!r}, not a finite number")
        return float(value)


CHECKERS: dict[str, type] = {
    "gsm8k": GSM8KChecker,
    "hotpotqa": HotpotQAChecker,
    "boolq": BoolQChecker,
    "exact": ExactChecker,
}
# Dataset name (assay.correct.qa.DATASETS) -> default checker name.
DEFAULT_CHECKERS = {"gsm8k": "gsm8k", "hotpotqa": "hotpotqa", "boolq": "boolq", "csv": "exact", "jsonl": "exact"}


def load_checker(spec: str) -> Checker:
    """A checker by name (gsm8k, hotpotqa, boolq, exact) or `path/to/file.py:function`."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"checker must be a name ({', '.join(CHECKERS)}) or path/to/file.py:function")
    if spec in CHECKERS:
        return CHECKERS[spec]()
    if ":" in spec:
        return CustomChecker(spec)
    raise ConfigError(f"unknown checker {spec!r} (choose from: {', '.join(CHECKERS)}, or path/to/file.py:function)")


def checker_for(dataset: str) -> Checker:
    """The default checker of a QA dataset (csv/jsonl: exact match)."""
    if dataset not in DEFAULT_CHECKERS:
        raise ConfigError(f"no default checker for dataset {dataset!r} (known: {', '.join(DEFAULT_CHECKERS)})")
    return load_checker(DEFAULT_CHECKERS[dataset])
