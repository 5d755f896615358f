"""Structured (JSON) answers: find the JSON in a model's text, validate it, describe what is wrong.

    extract_json('Sure! ```json\\n{"a": 1,}\\n```')   -> {"a": 1}
    parse_structured(text, MyModel)                   -> (MyModel(...), None) or (None, "a: Field required")

Models wrap JSON in prose or code fences, leave trailing commas, use typographic quotes, or write
raw line breaks inside strings; those are repaired here, where it is safe. Anything else is left for
a repair round with the model (`LLMClient.complete_json`), whose message is `repair_message(error)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from assay.config import validation_message
from assay.llm.types import ChatRequest, ChatResponse

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
            # strict=False also reads raw line breaks and tabs inside strings (llama.cpp's grammar lets them through)
            for strict in (True, False):
                try:
                    return json.loads(variant, strict=strict)
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


# How a JSON Schema travels to an endpoint (LLMSettings.structured; docs/llm.md "Structured output"),
# strongest first: the order `auto` falls back in. json_schema: response_format {"type": "json_schema"}
# (OpenAI, vLLM, ...); json_object_schema: {"type": "json_object", "schema": ...} (llama.cpp's server,
# which then decodes under a grammar); json_object: {"type": "json_object"} with the schema in the
# prompt; prompt: the schema in the prompt only. The answer is validated (and repaired) either way.
STRUCTURED_MODES = ("json_schema", "json_object_schema", "json_object", "prompt")
# What each backend kind does with a schema when nothing else is asked (the cache key's default).
NATIVE_MODE = {"openai": "json_schema", "litellm": "json_schema", "local": "grammar", "anthropic": "tool"}
# Modes that put the schema into the prompt.
PROMPTED_MODES = frozenset({"json_object", "prompt"})


# Regex shorthands, for llama.cpp's JSON-Schema-to-grammar converter, which copies them into the
# grammar as unknown escapes (the server, or the process of the local backend, then dies parsing it).
_CLASS_SHORTHANDS = {"s": " \\t\\n\\r", "d": "0-9", "w": "A-Za-z0-9_"}


def _portable_pattern(pattern: str) -> str:
    """`pattern` with \\s \\S \\d \\D \\w \\W spelled as character classes (ASCII: what JSON Schema
    patterns of configs mean in practice; the negated ones without '"' and '\\'). Negated shorthands
    inside a class are left as they are."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            base = _CLASS_SHORTHANDS.get(nxt.lower())
            if base is not None and not in_class:  # (a negated one excludes the quote and the backslash: the
                # converter puts the pattern between the string's quotes without escaping)
                out.append(f'[^{base}"\\\\]' if nxt.isupper() else f"[{base}]")
            elif base is not None and nxt.islower():
                out.append(base)
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


SMALL_RANGE = 64  # an integer range up to this wide becomes an enum for llama.cpp


def portable_schema(schema: Any) -> Any:
    """A copy of `schema` in the subset llama.cpp's grammar converter enforces (the json_object_schema
    mode, the local llama.cpp backend): `pattern`s without regex shorthands (see _portable_pattern),
    and an integer with `minimum` and `maximum` at most SMALL_RANGE apart as the enum of its values
    (the converter ignores integer bounds)."""
    if isinstance(schema, list):
        return [portable_schema(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: _portable_pattern(v) if k == "pattern" and isinstance(v, str) else portable_schema(v)
        for k, v in schema.items()
    }
    low, high = schema.get("minimum"), schema.get("maximum")
    if (
        schema.get("type") == "integer"
        and "enum" not in schema
        and isinstance(low, int)
        and isinstance(high, int)
        and 0 <= high - low <= SMALL_RANGE
    ):
        out["enum"] = list(range(low, high + 1))
    return out


def schema_instruction(schema: dict) -> str:
    """The instruction that carries a schema in the prompt."""
    return "Answer with JSON only, following this JSON Schema:\n" + json.dumps(schema, ensure_ascii=False)


def messages_with_schema(messages: list[dict], schema: dict) -> list[dict]:
    """`messages` with the schema instruction appended to the system turn (or in a new one first)."""
    instruction = schema_instruction(schema)
    if messages and messages[0].get("role") == "system":
        first = {**messages[0], "content": f"{messages[0].get('content', '')}\n\n{instruction}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


_STRUCTURED_WORDS = re.compile(r"response_format|json_schema|json_object|\bschema\b|grammar", re.IGNORECASE)


def mentions_structured(text: str) -> bool:
    """True when an error message names the structured-output part of a request."""
    return bool(_STRUCTURED_WORDS.search(text))


PROBE_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "boolean"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def probe_request(model: str, mode: str | None = None) -> ChatRequest:
    """The tiny request with a schema that finds (or checks) a structured mode."""
    return ChatRequest.prompt(
        'Is water wet? Answer in JSON: {"answer": true} or {"answer": false}.',
        model=model,
        json_schema=PROBE_SCHEMA,
        schema_name="probe",
        max_tokens=24,
        temperature=0.0,
        structured=mode,
    )


def repair_message(error: str, schema: dict | None) -> str:
    """The user message of a repair round."""
    text = f"Your previous answer was not valid: {error}\nReply with the corrected JSON only, no other text."
    if schema is not None:
        text += "\nIt must follow this JSON Schema:\n" + json.dumps(schema, ensure_ascii=False)
    return text
