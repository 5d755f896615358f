"""Structured (JSON) answers: find the JSON in a model's text, validate it, describe what is wrong.

    extract_json('Sure! ```json\\n{"a": 1,}\\n```')   -> {"a": 1}
    parse_structured(text, MyModel)                   -> (MyModel(...), None) or (None, "a: Field required")

Models wrap JSON in prose or code fences, leave trailing commas, or use typographic quotes; those
are repaired here, where it is safe. Anything else is left for a repair round with the model
(`LLMClient.complete_json`), whose message is `repair_message(error)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from assay.config import validation_message
from assay.llm.types import ChatResponse

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_SMART = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"'})

Validator = type[BaseModel] | Callable[[Any], Any] | None


class JSONExtractError(ValueError):
    """No JSON value could be read from the text."""


@dataclass(frozen=True)
class StructuredResult:
    """value: the validated object (None on failure); response: the last answer; raw_text: its text;
    error: why the last answer was rejected (None on success); attempts: calls made (1 + repairs)."""

    value: Any
    response: ChatResponse | None
    raw_text: str
    error: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None


def extract_json(text: str) -> Any:
    """The JSON value in `text`: the whole text, a fenced block, or the outermost balanced {...}/[...].
    Trailing commas and typographic double quotes are repaired when the text does not parse as is."""
    stripped = text.strip()
    candidates = [stripped]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    starts = sorted(i for i in (stripped.find("{"), stripped.find("[")) if i >= 0)
    for start in starts:
        end = _balanced_end(stripped, start)
        if end is not None:
            candidates.append(stripped[start:end])
    for candidate in dict.fromkeys(c for c in candidates if c):
        for variant in _variants(candidate):
            try:
                return json.loads(variant)
            except ValueError:
                continue
    if starts and _balanced_end(stripped, starts[0]) is None:
        raise JSONExtractError("the JSON is cut off (unbalanced brackets)")
    raise JSONExtractError("no JSON object found in the answer" if not starts else "the JSON does not parse")


def _variants(candidate: str):
    yield candidate
    fixed = _drop_trailing_commas(candidate)
    if fixed != candidate:
        yield fixed
    if any(q in candidate for q in "\u201c\u201d\u201e\u2033"):
        # only as a last resort: inside a JSON string a typographic quote is legitimate text
        smart = candidate.translate(_SMART)
        yield smart
        yield _drop_trailing_commas(smart)


def _balanced_end(text: str, start: int) -> int | None:
    """Index after the bracket that closes the one at `start` (strings respected), or None."""
    depth = 0
    in_string = escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _drop_trailing_commas(text: str) -> str:
    """Remove commas that directly precede } or ] (outside strings)."""
    out: list[str] = []
    in_string = escaped = False
    pending_comma: int | None = None  # index in `out` of a comma not yet known to be trailing
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch in "}]" and pending_comma is not None:
            del out[pending_comma]
            pending_comma = None
        elif not ch.isspace():
            pending_comma = None
        if ch == ",":
            pending_comma = len(out)
        elif ch == '"':
            in_string = True
        out.append(ch)
    return "".join(out)


def json_schema_for(validator: Validator) -> dict | None:
    """The JSON Schema of a pydantic model class; None for a plain callable."""
    if isinstance(validator, type) and issubclass(validator, BaseModel):
        return validator.model_json_schema()
    return None


def describe_validation_error(exc: Exception) -> str:
    """One line: 'path: message; path: message' for pydantic errors, else the exception's text."""
    if isinstance(exc, ValidationError):
        return validation_message(exc, root="(root)", limit=8)
    return " ".join(str(exc).split()) or type(exc).__name__


def parse_structured(text: str, validator: Validator = None) -> tuple[Any, str | None]:
    """(value, None) if `text` holds JSON that `validator` accepts, else (None, one-line reason).

    validator: a pydantic model class (value is an instance), a callable (value is its return;
    it rejects by raising ValueError/TypeError/ValidationError) or None (any JSON).
    """
    try:
        obj = extract_json(text)
    except JSONExtractError as exc:
        return None, f"invalid JSON: {exc}"
    if validator is None:
        return obj, None
    try:
        if isinstance(validator, type) and issubclass(validator, BaseModel):
            return validator.model_validate(obj), None
        return validator(obj), None
    except (ValidationError, ValueError, TypeError, KeyError) as exc:
        return None, describe_validation_error(exc)


def repair_message(error: str, schema: dict | None) -> str:
    """The user message of a repair round."""
    text = f"Your previous answer was not valid: {error}\nReply with the corrected JSON only, no other text."
    if schema is not None:
        text += "\nIt must follow this JSON Schema:\n" + json.dumps(schema, ensure_ascii=False)
    return text
