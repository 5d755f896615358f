"""Answer checkers: task-specific correctness (never substring matching), on the real samples and on
targeted cases, plus custom checkers loaded from a file."""

from __future__ import annotations

import pytest

from assay.correct.checkers import (
    BoolQChecker,
    Checker,
    CheckerError,
    CheckResult,
    ExactChecker,
    GSM8KChecker,
    HotpotQAChecker,
    checker_for,
    load_checker,
    normalize_answer,
    token_f1,
)
from assay.correct.qa import stream_qa
from assay.errors import AssayError, ConfigError

# --- GSM8K ------------------------------------------------------------------------------------


def test_gsm8k_worked_solutions_are_correct_for_every_real_row():
    checker = GSM8KChecker()
    items = list(stream_qa("gsm8k"))
    assert len(items) == 1319
    wrong = [i.id for i in items if not checker.check(i.solution, i.reference_answer).correct]
    assert wrong == []
    # And the reference itself is rejected as an answer to a different question.
    assert not checker.check(items[1].solution, items[0].reference_answer).correct


@pytest.mark.parametrize(
    ("prediction", "reference", "extracted", "correct"),
    [
        ("142", "42", "142", False),  # the seed's substring bug
        ("The answer is 142.", "42", "142", False),
        ("42", "142", "42", False),
        ("18", "18", "18", True),
        ("18.0", "18", "18", True),
        ("$18", "18", "18", True),
        ("She makes 18 dollars.", "18", "18", True),
        ("1,800", "1800", "1800", True),
        ("#### 1,800", "1,800", "1800", True),
        ("The answer is $1,450,000", "1450000", "1450000", True),
        ("So the answer is: 25%", "25", "25", True),
        ("Answer: -3", "-3", "-3", True),
        ("The temperature drops 16-3-4 = 9", "9", "9", True),  # hyphens between numbers are not signs
        ("x = -10", "-10", "-10", True),
        ("It is 2.5 hours", "2.5", "2.5", True),
        ("It is 2.50 hours", "2.5", "2.5", True),
        ("She ate 3/4 of it", "0.75", "0.75", True),
        ("The answer is 5 apples, since 2 + 3 = 5 and 10 - 5 = 5", "5", "5", True),
        ("The answer is 7 because 3 + 4", "4", "7", False),  # the marked number wins over the last one
        ("The answer is 2 * 1.5 = 3 bolts.", "3", "3", True),  # a calculation: its result
        ("The answer is: $12 - 4 = 8 / 2 = 4", "4", "4", True),
        ("The answer is 5. Check: 5 * 2 = 10", "5", "5", True),  # a check after the answer is not it
        ("First 3, then 4, finally 12", "12", "12", True),  # no marker: last number
        ("I cannot tell.", "12", None, False),
        ("", "12", None, False),
    ],
)
def test_gsm8k_cases(prediction, reference, extracted, correct):
    result = GSM8KChecker().check(prediction, reference)
    assert (result.extracted, result.correct, result.score) == (extracted, correct, float(correct))


def test_gsm8k_reference_without_a_number_is_an_error():
    with pytest.raises(CheckerError, match="holds no number"):
        GSM8KChecker().check("18", "eighteen")


# --- HotpotQA ---------------------------------------------------------------------------------


def test_normalisation_and_f1():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple, a day") == "apple day"
    assert token_f1("Greenwich Village, NYC", "Greenwich Village, New York City") == pytest.approx(0.5)
    assert token_f1("the", "a") == 1.0  # both empty after normalisation
    assert token_f1("Paris", "London") == 0.0


@pytest.mark.parametrize(
    ("prediction", "reference", "extracted", "correct", "score"),
    [
        ("The answer is: Paris.", "Paris", "Paris", True, 1.0),
        ("the Chief of Protocol", "Chief of Protocol", "the Chief of Protocol", True, 1.0),
        ("Answer: **YG Entertainment**. It is a label.", "YG Entertainment", "YG Entertainment", True, 1.0),
        ("Reasoning first.\nBoth were born there.\nNew York City", "New York City", "New York City", True, 1.0),
        ("The answer is Robert Childers", "Robert Erskine Childers DSC", "Robert Childers", False, 2 * 1 * 0.5 / 1.5),
        ("The answer is Mr. Smith. He won.", "Mr Smith", "Mr. Smith", True, 1.0),
        ("Yes, they were both American.", "yes", "yes", True, 1.0),
        ("No.", "yes", "no", False, 0.0),
        ("They were from different countries.", "no", None, False, 0.0),
        ("The answer is yes", "Animorphs", "yes", False, 0.0),  # yes/no never earns partial credit
        ("", "Paris", None, False, 0.0),
    ],
)
def test_hotpotqa_cases(prediction, reference, extracted, correct, score):
    result = HotpotQAChecker().check(prediction, reference)
    assert (result.extracted, result.correct) == (extracted, correct)
    assert result.score == pytest.approx(score)
    assert result.detail["em"] == float(correct)


def test_hotpotqa_real_references_match_themselves():
    checker = HotpotQAChecker()
    for item in stream_qa("hotpotqa"):
        result = checker.check(f"The answer is {item.reference_answer}", item.reference_answer)
        assert result.correct and result.score == 1.0, item.id


# --- BoolQ ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "extracted", "correct"),
    [
        ("Yes.", "yes", "yes", True),
        ("TRUE", "yes", "yes", True),
        ("false", "no", "no", True),
        ("No, it does not.", "false", "no", True),
        ("Looking at yes-or-no evidence... the answer is no", "no", "no", True),
        ("I think the answer is no, not yes", "yes", "no", False),
        ("Nothing suggests that; nobody knows", "no", None, False),  # "no" only as a whole word
        ("maybe", "yes", None, False),
        ("", "no", None, False),
    ],
)
def test_boolq_cases(prediction, reference, extracted, correct):
    result = BoolQChecker().check(prediction, reference)
    assert (result.extracted, result.correct, result.score) == (extracted, correct, float(correct))


def test_boolq_real_references_and_bad_reference():
    checker = BoolQChecker()
    for item in stream_qa("boolq"):
        assert checker.check(item.reference_answer.capitalize() + ".", item.reference_answer).correct
        flipped = "no" if item.reference_answer == "yes" else "yes"
        assert not checker.check(flipped, item.reference_answer).correct
    with pytest.raises(CheckerError, match="must be yes/no"):
        checker.check("yes", "perhaps")


def test_exact_checker():
    checker = ExactChecker()
    assert checker.check("The answer is: the Beatles!", "Beatles").correct
    assert not checker.check("Beatles tribute band", "Beatles").correct
    assert checker.check("", "x") == CheckResult(False, 0.0, None, {})


# --- lookup and custom checkers ---------------------------------------------------------------


def test_load_checker_and_checker_for():
    for name, cls in [("gsm8k", GSM8KChecker), ("hotpotqa", HotpotQAChecker), ("boolq", BoolQChecker)]:
        assert isinstance(load_checker(name), cls)
        assert isinstance(checker_for(name), cls)
        assert isinstance(load_checker(name), Checker)
    assert isinstance(checker_for("csv"), ExactChecker) and isinstance(checker_for("jsonl"), ExactChecker)
    with pytest.raises(ConfigError, match="unknown checker 'squad'"):
        load_checker("squad")
    with pytest.raises(ConfigError, match="no default checker"):
        checker_for("squad")


CUSTOM = """
def as_bool(prediction, reference):
    return prediction.strip() == reference

def as_float(prediction, reference):
    return 0.25 if prediction else 1

def as_dict(prediction, reference):
    return {"correct": prediction == reference, "score": 0.5, "extracted": prediction, "why": "demo"}

def bad_type(prediction, reference):
    return "yes"

def no_correct(prediction, reference):
    return {"score": 1.0}

def bad_score(prediction, reference):
    return float("nan")

def bad_extracted(prediction, reference):
    return {"correct": True, "extracted": 3}

def raises(prediction, reference):
    raise ValueError("boom")

def one_arg(prediction):
    return True

not_callable = 3
"""


def test_custom_checker_results(tmp_path):
    path = tmp_path / "mycheck.py"
    path.write_text(CUSTOM)
    assert load_checker(f"{path}:as_bool").check(" a ", "a") == CheckResult(True, 1.0, None, {})
    assert load_checker(f"{path}:as_float").check("x", "a") == CheckResult(False, 0.25, None, {})
    assert load_checker(f"{path}:as_float").check("", "a") == CheckResult(True, 1.0, None, {})
    assert load_checker(f"{path}:as_dict").check("a", "a") == CheckResult(True, 0.5, "a", {"why": "demo"})


@pytest.mark.parametrize(
    ("func", "pattern"),
    [
        ("bad_type", "returned str, not a bool, number or dict"),
        ("no_correct", "without a bool 'correct'"),
        ("bad_score", "returned score nan, not a finite number"),
        ("bad_extracted", "'extracted' must be a str or None"),
        ("raises", "raised ValueError: boom"),
    ],
)
def test_custom_checker_bad_results(tmp_path, func, pattern):
    path = tmp_path / "mycheck.py"
    path.write_text(CUSTOM)
    with pytest.raises(CheckerError, match=pattern):
        load_checker(f"{path}:{func}").check("a", "a")


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("{dir}/mycheck.py", "unknown checker"),
        ("{dir}/mycheck.txt:as_bool", "must look like path/to/file.py:function"),
        ("{dir}/missing.py:f", "does not exist"),
        ("{dir}/mycheck.py:nope", "has no function 'nope'"),
        ("{dir}/mycheck.py:not_callable", "has no function 'not_callable'"),
        ("{dir}/mycheck.py:one_arg", r"signature must be \(prediction: str, reference: str\)"),
        ("{dir}/broken.py:f", "failed to import: SyntaxError"),
    ],
)
def test_custom_checker_bad_specs(tmp_path, spec, pattern):
    (tmp_path / "mycheck.py").write_text(CUSTOM)
    (tmp_path / "broken.py").write_text("def f(:\n")
    with pytest.raises(AssayError, match=pattern) as exc_info:
        load_checker(spec.format(dir=tmp_path))
    assert "\n" not in str(exc_info.value)
