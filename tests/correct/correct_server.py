"""A scripted LLM for the correction engine tests: it answers the first six GSM8K test questions
(the shipped sample) with a fixed right/wrong pattern per question, keyed on the question (found in
the first user message) and on the number of assistant turns already in the conversation.

Right = the reference number, wrong = the reference + 1 (or + 2 for a second distinct wrong answer).
"""

from __future__ import annotations

import itertools

from assay.correct.qa import stream_qa
from assay.llm.testserver import Reply

# question index -> (expected label, answer keys per turn: "R", "W" (ref + 1) or "W2" (ref + 2))
PATTERNS = {
    0: ("corrected", ["W", "R", "R"]),
    1: ("overcorrected", ["R", "W", "W"]),
    2: ("anchored", ["W", "W", "W"]),
    3: ("wavering", ["W", "R", "W2"]),
    4: ("unchanged_correct", ["R", "R", "R"]),
    5: ("perfectionism", ["R", "W", "R"]),
}
ITEMS = list(itertools.islice(stream_qa("gsm8k"), len(PATTERNS)))
IDS = [item.id for item in ITEMS]


def sample_lines() -> list[str]:
    """The first six lines of the shipped GSM8K test file (write them to a file named test.jsonl)."""
    from assay.correct.qa import sample_path

    with sample_path("gsm8k").open(encoding="utf-8") as f:
        return [next(f) for _ in PATTERNS]


def scripted_answer(index: int, turn: int) -> str:
    keys = PATTERNS[index][1]
    key = keys[min(turn, len(keys) - 1)]
    ref = int(ITEMS[index].reference_answer)
    value = ref if key == "R" else ref + (2 if key == "W2" else 1)
    hedge = "Maybe I slipped somewhere. " if index == 3 else ""
    return f"Working it out step by step gives {value}. {hedge}\nAnswer: {value}"


def respond(body: dict) -> Reply:
    first = body["messages"][0]["content"]
    turn = sum(m["role"] == "assistant" for m in body["messages"])
    for index, item in enumerate(ITEMS):
        if item.question in first:
            return Reply(content=scripted_answer(index, turn))
    return Reply(content="I do not know.\nAnswer: 0")


# --- forty questions whose answers' wording tells right from wrong (the classifier's tests) ---------

N_HEDGED = 40
HEDGED_ITEMS = list(itertools.islice(stream_qa("gsm8k"), N_HEDGED))
# per question index mod 4: right/wrong per turn. Right answers are stated plainly; wrong ones hedge,
# so the current answer's text tells whether it is right (what a confidence head can learn).
HEDGED_PATTERNS = [["W", "R", "R"], ["R", "R", "R"], ["W", "W", "W"], ["R", "W", "W"]]


def hedged_lines() -> list[str]:
    """The first 40 lines of the shipped GSM8K test file (write them to a file named test.jsonl)."""
    from assay.correct.qa import sample_path

    with sample_path("gsm8k").open(encoding="utf-8") as f:
        return [next(f) for _ in range(N_HEDGED)]


def hedged_respond(body: dict, delay_s: float = 0.0) -> Reply:
    first = body["messages"][0]["content"]
    turn = sum(m["role"] == "assistant" for m in body["messages"])
    for index, item in enumerate(HEDGED_ITEMS):
        if item.question in first:
            ref = int(item.reference_answer)
            if HEDGED_PATTERNS[index % 4][min(turn, 2)] == "R":
                return Reply(content=f"Adding the amounts step by step gives {ref}.\nAnswer: {ref}", delay_s=delay_s)
            wrong = ref + 1
            text = f"I think it might be {wrong}, but I am not sure, maybe I slipped.\nAnswer: {wrong}"
            return Reply(content=text, delay_s=delay_s)
    return Reply(content="Answer: 0", delay_s=delay_s)
