"""Schema-guided JSON decoding: walk a JSON Schema and let a language model fill in only the choices.

The walker writes the structure itself (braces, keys in schema order, commas) and asks the model
(any `TokenModel`) just for what the schema leaves open:

- `enum` / `const` / `bool` / small integer ranges: every option's full text is scored under the
  model (`TokenModel.score`, log-prob of the whole option) and one is picked from the softmax of
  those scores at the request temperature (argmax at 0);
- free strings: tokens are sampled with every token masked whose text contains `"`, `\\`, a control
  character or a broken UTF-8 piece; the string ends when the model picks a token that starts with
  `"` (or at maxLength / the per-field token cap); minLength masks the end;
- `pattern` strings and numbers: tokens are limited to those that keep the text a prefix of a match
  of the pattern (`local_pattern`); the end is allowed once the text is a full match;
- `anyOf` / optional fields and array lengths: the branches' first texts (`null`, `"`, `{`, `]`,
  digits ...) are scored and a branch is picked from their summed probabilities.

The output is built as a Python value and returned as `json.dumps(value)`, so it is always
well-formed and valid against the schema. A token budget (`max_tokens`) bounds the whole object:
once spent, the rest is filled in with the smallest valid values without the model (finish_reason
"length"). Unsupported schema features raise `SchemaError` up front, never an invalid answer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import torch

from assay.errors import AssayError
from assay.llm.local_pattern import Pattern, PatternError, compile_pattern
from assay.llm.local_sampling import pick

# Integer ranges with at most this many values are chosen like an enum (one scored forward pass).
SMALL_RANGE = 16
# Arrays with no maxItems stop here at the latest (the token budget usually ends them sooner).
DEFAULT_MAX_ITEMS = 32
# Nesting depth past which a recursive schema is cut short with its smallest valid value.
MAX_DEPTH = 24
# Digits kept after the point of a generated float, and digits of an unbounded integer.
FRACTION_DIGITS = 6
INTEGER_DIGITS = 15

# Keywords that only annotate a schema: they never constrain the value.
_ANNOTATIONS = {
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$schema",
    "$id",
    "$comment",
    "discriminator",
    "$defs",
    "definitions",
}
_KNOWN = _ANNOTATIONS | {
    "$ref",
    "allOf",
    "anyOf",
    "oneOf",
    "const",
    "enum",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
}


class SchemaError(AssayError):
    """A JSON Schema uses a feature the guided decoder cannot guarantee to satisfy."""


# --- the model interface ---------------------------------------------------------------------------


class Vocab:
    """Per-token facts the decoder masks with, built once per tokenizer.

    `texts[i]` is token i's decoded text, or None for special tokens (never generated inside JSON).
    Tensors are [V]: `lengths` (characters), `in_string` (may appear unescaped inside a JSON string:
    no `"`, `\\`, control characters or U+FFFD from a partial UTF-8 sequence), `ends_string` (starts
    with `"`: the model wants to close the string) and `ends_number` (starts with `,`, `}` or `]`:
    the model is past the number); `string_end_ids` / `number_end_ids` list those tokens.
    """

    def __init__(self, texts: Sequence[str | None]):
        self.texts = [t if t else None for t in texts]
        self.size = len(self.texts)
        self.lengths = torch.tensor([len(t) if t else 0 for t in self.texts], dtype=torch.long)
        self.in_string = torch.tensor([_string_safe(t) for t in self.texts], dtype=torch.bool)
        self.ends_string = torch.tensor([bool(t) and t[0] == '"' for t in self.texts], dtype=torch.bool)
        self.ends_number = torch.tensor([bool(t) and t[0] in ",}]" for t in self.texts], dtype=torch.bool)
        self.string_end_ids = self.ends_string.nonzero()[:, 0]
        self.number_end_ids = self.ends_number.nonzero()[:, 0].tolist()
        self._groups: dict[str, list[tuple[str, list[int]]]] = {}
        self._numeric: list[int] | None = None
        self._moves: dict[tuple[str, frozenset[int]], PatternMoves] = {}

    def numeric_ids(self) -> list[int]:
        """Tokens made only of digits, '-' and '.' (the candidates for a JSON number)."""
        if self._numeric is None:
            self._numeric = [i for i, t in enumerate(self.texts) if t and all(c in "0123456789-." for c in t)]
        return self._numeric

    def pattern_moves(self, pattern: Pattern, states: frozenset[int]) -> PatternMoves:
        """Tokens that keep a match of `pattern` alive from `states` (cached per pattern and state set)."""
        key = (pattern.source, states)
        if key not in self._moves:
            ids, nexts, needs = [], [], []
            for text, group in self._pattern_groups(pattern):
                nxt = pattern.advance(states, text)
                if nxt:
                    ids += group
                    nexts += [nxt] * len(group)
                    needs += [len(text) + pattern.remaining(nxt)] * len(group)
            self._moves[key] = PatternMoves(torch.tensor(ids, dtype=torch.long), nexts, torch.tensor(needs))
        return self._moves[key]

    def _pattern_groups(self, pattern: Pattern) -> list[tuple[str, list[int]]]:
        """The tokens that can occur in a match, grouped by the pattern's view of their characters
        (per character: which of its character sets contain it). Tokens in a group move the same way
        from every state, so each group is simulated once. [(a representative text, token ids)]"""
        if pattern.source not in self._groups:
            sets = pattern.charsets()
            classes: dict[str, int] = {}
            groups: dict[tuple[int, ...], list[int]] = {}
            for i, text in enumerate(self.texts):
                if not self.in_string[i]:
                    continue
                signature = []
                for char in text:
                    cls = classes.get(char)
                    if cls is None:
                        cls = classes[char] = sum(1 << k for k, cs in enumerate(sets) if char in cs)
                    if not cls:  # a character no set admits: the token never fits
                        break
                    signature.append(cls)
                else:
                    groups.setdefault(tuple(signature), []).append(i)
            self._groups[pattern.source] = [(self.texts[ids[0]], ids) for ids in groups.values()]
        return self._groups[pattern.source]


@dataclass
class PatternMoves:
    """From one state set: allowed token `ids` [k], the state set after each, and `need` [k], the
    characters each commits the text to (its own plus the shortest completion after it)."""

    ids: torch.Tensor
    next_states: list[frozenset[int]]
    need: torch.Tensor
    index: dict[int, int] = field(default_factory=dict)  # token id -> its position in `ids`

    def __post_init__(self):
        self.index = {int(t): i for i, t in enumerate(self.ids.tolist())}


def _string_safe(text: str | None) -> bool:
    return bool(text) and all(c not in '"\\\ufffd' and ord(c) >= 0x20 and c not in "\u2028\u2029" for c in text)


class TokenModel(Protocol):
    """What the walker needs from a language model positioned after the prompt.

    Text pushed with `push_text` is pending until the next call that needs the model, so forced
    text and the options that follow it are tokenised together and run in one forward pass.
    `consumed` counts the completion tokens so far (after the prompt), pending text included.
    """

    vocab: Vocab
    consumed: int

    def push_text(self, text: str) -> None:
        """Append forced text."""

    def push_token(self, token: int) -> None:
        """Append one chosen token (after any pending text)."""

    def next_logits(self, among: torch.Tensor | None = None) -> torch.Tensor:
        """[V] logits of the next token after everything pushed so far. With `among` (token ids),
        only those matter: the others may be returned as -inf (and need not be computed)."""

    def score(self, texts: Sequence[str]) -> torch.Tensor:
        """[n] log-probs of texts[i] as the continuation after the pending text; changes nothing until
        `commit`. (The real model scores pending + text tokenised together: the shared part adds about
        the same to every option, so only differences between options matter.)"""

    def commit(self, index: int) -> None:
        """Append pending text + texts[index] of the last `score` call."""


# --- schema -> nodes -------------------------------------------------------------------------------


@dataclass
class Choice:
    """One of these JSON values (enum, const, bool, null, a small integer range)."""

    values: list[Any]


@dataclass
class Text:
    min_length: int = 0
    max_length: int | None = None
    pattern: Pattern | None = None


@dataclass
class Numeric:
    integer: bool
    minimum: float | None = None  # inclusive
    maximum: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False


@dataclass
class Obj:
    fields: list[tuple[str, Any]]


@dataclass
class Arr:
    prefix: list[Any]
    items: Any  # node, or None when no items beyond `prefix` are allowed
    min_items: int = 0
    max_items: int | None = None
    unique: bool = False


@dataclass
class Union:
    branches: list[Any]


@dataclass
class Ref:
    """A `$ref`, resolved when first walked (schemas may be recursive)."""

    target: str
    resolve: Callable[[str], Any] = field(repr=False)


Node = Choice | Text | Numeric | Obj | Arr | Union | Ref


def compile_schema(schema: dict) -> Node:
    """Turn a JSON Schema (the subset pydantic v2 emits) into decoder nodes; SchemaError if unsupported."""
    if not isinstance(schema, dict):
        raise SchemaError(f"a JSON schema must be an object, not {type(schema).__name__}")
    resolved: dict[str, Node] = {}

    def resolve(ref: str) -> Node:
        if ref not in resolved:
            if ref == "#":
                target = schema
            else:
                parts = ref.split("/")
                if len(parts) != 3 or parts[0] != "#" or parts[1] not in ("$defs", "definitions"):
                    raise SchemaError(f"$ref {ref!r}: only local '#/$defs/Name' references are supported")
                target = schema.get(parts[1], {}).get(parts[2])
                if target is None:
                    raise SchemaError(f"$ref {ref!r} points to no definition")
            resolved[ref] = _compile(target, resolve, ref)
        return resolved[ref]

    node = _compile(schema, resolve, "#")
    _check_refs(node, resolve, set())
    return node


def _check_refs(node: Node, resolve, seen: set[str]) -> None:
    """Resolve every reachable $ref now, so a bad definition fails before any model call."""
    if isinstance(node, Ref):
        if node.target not in seen:
            seen.add(node.target)
            _check_refs(resolve(node.target), resolve, seen)
    elif isinstance(node, Obj):
        for _, sub in node.fields:
            _check_refs(sub, resolve, seen)
    elif isinstance(node, Arr):
        for sub in [*node.prefix, node.items]:
            if sub is not None:
                _check_refs(sub, resolve, seen)
    elif isinstance(node, Union):
        for sub in node.branches:
            _check_refs(sub, resolve, seen)


def _compile(schema: Any, resolve, where: str) -> Node:
    if schema is True or schema == {}:
        return Text()  # any value is valid; a string is the simplest
    if not isinstance(schema, dict):
        raise SchemaError(f"{where}: schema must be an object, not {schema!r}")
    unknown = sorted(set(schema) - _KNOWN)
    if unknown:
        raise SchemaError(f"{where}: unsupported JSON schema keyword(s) {', '.join(unknown)}")
    if "$ref" in schema:
        return Ref(schema["$ref"], resolve)
    if "allOf" in schema:
        if len(schema["allOf"]) != 1:
            raise SchemaError(f"{where}: allOf with more than one schema is not supported")
        return _compile(schema["allOf"][0], resolve, where)
    if "const" in schema:
        return Choice([schema["const"]])
    if "enum" in schema:
        values = list(schema["enum"])
        if not values:
            raise SchemaError(f"{where}: empty enum")
        return Choice(values)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key and k not in _ANNOTATIONS}
            if rest:
                raise SchemaError(f"{where}: {key} next to {', '.join(sorted(rest))} is not supported")
            return _union([_compile(s, resolve, f"{where}/{key}/{i}") for i, s in enumerate(schema[key])])
    kind = schema.get("type")
    if isinstance(kind, list):
        return _union([_compile({**schema, "type": k}, resolve, where) for k in kind])
    if kind is None:
        if "properties" in schema:
            kind = "object"
        elif "items" in schema or "prefixItems" in schema:
            kind = "array"
        else:
            return Text()
    if kind == "null":
        return Choice([None])
    if kind == "boolean":
        return Choice([True, False])
    if kind == "string":
        return _text(schema, where)
    if kind in ("integer", "number"):
        return _numeric(schema, kind == "integer", where)
    if kind == "object":
        props = schema.get("properties", {})
        return Obj([(name, _compile(sub, resolve, f"{where}/{name}")) for name, sub in props.items()])
    if kind == "array":
        return _array(schema, resolve, where)
    raise SchemaError(f"{where}: unknown type {kind!r}")


def _union(branches: list[Node]) -> Node:
    """Merge enum-like branches into one Choice (one scored pass for e.g. Optional[Literal[...]])."""
    choices = [v for b in branches if isinstance(b, Choice) for v in b.values]
    others = [b for b in branches if not isinstance(b, Choice)]
    merged = []
    for v in choices:
        if not any(json.dumps(v) == json.dumps(m) for m in merged):
            merged.append(v)
    out = ([Choice(merged)] if merged else []) + others
    return out[0] if len(out) == 1 else Union(out)


def _text(schema: dict, where: str) -> Text:
    lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
    if hi is not None and int(hi) < lo:
        raise SchemaError(f"{where}: maxLength {hi} < minLength {lo}")
    pattern = None
    if "pattern" in schema:
        try:
            pattern = compile_pattern(schema["pattern"])
        except PatternError as exc:
            raise SchemaError(f"{where}: {exc}") from None
        if hi is not None and pattern.remaining(pattern.start) > int(hi):
            raise SchemaError(f"{where}: pattern {schema['pattern']!r} cannot match within maxLength {hi}")
    return Text(lo, None if hi is None else int(hi), pattern)


def _numeric(schema: dict, integer: bool, where: str) -> Node:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    node = Numeric(integer, lo, hi)
    if ex_lo is not None and (lo is None or ex_lo >= lo):
        node.minimum, node.exclusive_min = ex_lo, True
    if ex_hi is not None and (hi is None or ex_hi <= hi):
        node.maximum, node.exclusive_max = ex_hi, True
    if integer:  # integer bounds are always inclusive
        if node.minimum is not None:
            node.minimum = math.floor(node.minimum) + 1 if node.exclusive_min else math.ceil(node.minimum)
        if node.maximum is not None:
            node.maximum = math.ceil(node.maximum) - 1 if node.exclusive_max else math.floor(node.maximum)
        node.exclusive_min = node.exclusive_max = False
        if node.minimum is not None and node.maximum is not None:
            if node.maximum < node.minimum:
                raise SchemaError(f"{where}: no integer between the bounds")
            if node.maximum - node.minimum < SMALL_RANGE:
                return Choice(list(range(int(node.minimum), int(node.maximum) + 1)))
    elif _bounded(node) and (
        node.maximum < node.minimum or (node.maximum == node.minimum and (node.exclusive_min or node.exclusive_max))
    ):
        raise SchemaError(f"{where}: no number between the bounds")
    return node


def _array(schema: dict, resolve, where: str) -> Arr:
    prefix = [_compile(s, resolve, f"{where}/prefixItems/{i}") for i, s in enumerate(schema.get("prefixItems", []))]
    items = schema.get("items", {} if not prefix else False)
    item_node = None if items is False else _compile(items, resolve, f"{where}/items")
    lo, hi = int(schema.get("minItems", 0)), schema.get("maxItems")
    hi = None if hi is None else int(hi)
    if item_node is None:
        hi = len(prefix) if hi is None else min(hi, len(prefix))
    if hi is not None and hi < max(lo, 0):
        raise SchemaError(f"{where}: maxItems {hi} < minItems {lo}")
    if item_node is None and lo > len(prefix):
        raise SchemaError(f"{where}: minItems {lo} needs more items than prefixItems allows")
    unique = bool(schema.get("uniqueItems", False))
    if unique and (prefix or not isinstance(item_node, Choice)):
        raise SchemaError(f"{where}: uniqueItems is only supported for arrays of enum values")
    if unique and hi is None:
        hi = len(item_node.values)
    if unique and lo > len(item_node.values):
        raise SchemaError(f"{where}: minItems {lo} exceeds the {len(item_node.values)} distinct values")
    return Arr(prefix, item_node, lo, hi, unique)


# --- the walk --------------------------------------------------------------------------------------


@dataclass
class GuidedOptions:
    """Sampling settings: `max_tokens` bounds all completion tokens, `max_string_tokens` each string."""

    temperature: float = 0.0
    top_p: float | None = None
    generator: torch.Generator | None = None
    max_tokens: int = 4096
    max_string_tokens: int = 64
    max_items: int = DEFAULT_MAX_ITEMS


@dataclass
class GuidedResult:
    value: Any
    text: str  # json.dumps(value, ensure_ascii=False): the characters the model saw
    finish_reason: str  # "stop", or "length" when the budget ran out and the rest was filled in


def generate_json(schema: dict | Node, model: TokenModel, options: GuidedOptions | None = None) -> GuidedResult:
    """Produce one JSON value valid against `schema`, with `model` making every open choice."""
    node = compile_schema(schema) if isinstance(schema, dict) else schema
    walker = _Walker(model, options or GuidedOptions())
    value = walker.value(node, 0)
    return GuidedResult(value, json.dumps(value, ensure_ascii=False), "length" if walker.truncated else "stop")


def _deref(node: Node) -> Node:
    while isinstance(node, Ref):
        node = node.resolve(node.target)
    return node


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class _Walker:
    def __init__(self, model: TokenModel, options: GuidedOptions):
        self.model, self.opt = model, options
        self.truncated = False

    # -- budget --

    def spent(self) -> bool:
        if self.model.consumed >= self.opt.max_tokens:
            self.truncated = True
        return self.truncated

    def push(self, text: str) -> None:
        if not self.truncated:
            self.model.push_text(text)

    def pick(self, scores: torch.Tensor) -> int:
        return pick(scores, self.opt.temperature, self.opt.top_p, self.opt.generator)

    # -- values --

    def value(self, node: Node, depth: int) -> Any:
        node = _deref(node)
        if depth > MAX_DEPTH or self.spent():
            value = minimal_value(node)
            self.push(_json(value))
            return value
        if isinstance(node, Choice):
            return self.choice(node.values)
        if isinstance(node, Text):
            return self.text(node)
        if isinstance(node, Numeric):
            return self.number(node)
        if isinstance(node, Obj):
            return self.object(node, depth)
        if isinstance(node, Arr):
            return self.array(node, depth)
        branches = node.branches
        return self.value(branches[self.decide([leads(b) for b in branches])], depth)

    def choice(self, values: list[Any]) -> Any:
        if len(values) == 1:
            self.push(_json(values[0]))
            return values[0]
        texts = [_json(v) for v in values]
        index = self.pick(self.model.score(texts))
        self.model.commit(index)
        return values[index]

    def decide(self, groups: list[list[str]]) -> int:
        """Pick a group of alternative continuations by the summed probability of its texts."""
        if len(groups) == 1:
            return 0
        if self.spent():
            return 0
        flat = [t for g in groups for t in g]
        scores = self.model.score(flat)
        sizes = torch.tensor([len(g) for g in groups])
        owner = torch.repeat_interleave(torch.arange(len(groups)), sizes)
        grouped = torch.full((len(groups),), -math.inf)
        for g in range(len(groups)):
            grouped[g] = torch.logsumexp(scores[owner == g], dim=0)
        return self.pick(grouped)

    def object(self, node: Obj, depth: int) -> dict:
        out = {}
        self.push("{")
        for i, (key, sub) in enumerate(node.fields):
            self.push((", " if i else "") + _json(key) + ": ")
            out[key] = self.value(sub, depth + 1)
        self.push("}")
        return out

    def array(self, node: Arr, depth: int) -> list:
        out: list = []
        self.push("[")
        limit = node.max_items if node.max_items is not None else max(node.min_items, self.opt.max_items)
        while len(out) < limit:
            sub = node.prefix[len(out)] if len(out) < len(node.prefix) else node.items
            if node.unique:
                sub = Choice([v for v in sub.values if all(_json(v) != _json(o) for o in out)])
            sep = ", " if out else ""
            if len(out) >= node.min_items and (
                self.spent() or self.decide([["]"], [sep + t for t in leads(sub)]]) == 0
            ):
                break
            self.push(sep)
            out.append(self.value(sub, depth + 1))
        self.push("]")
        return out

    def text(self, node: Text) -> str:
        self.push('"')
        if node.pattern is not None:
            value = self.constrained(node.pattern, node.min_length, node.max_length, self.model.vocab.string_end_ids)
        else:
            value = self.free_string(node.min_length, node.max_length)
        self.push('"')
        return value

    def free_string(self, min_length: int, max_length: int | None) -> str:
        vocab, chars, steps = self.model.vocab, "", 0
        while True:
            if max_length is not None and len(chars) >= max_length:
                break
            can_end = len(chars) >= min_length
            if self.spent() or steps >= self.opt.max_string_tokens:
                if not can_end:  # out of tokens below minLength: pad without the model
                    self.push("x" * (min_length - len(chars)))
                    chars += "x" * (min_length - len(chars))
                break
            allowed = vocab.in_string.clone()
            if max_length is not None:
                allowed &= vocab.lengths <= max_length - len(chars)
            if can_end:
                allowed |= vocab.ends_string
            token = self.pick(self.model.next_logits().masked_fill(~allowed, -math.inf))
            if can_end and vocab.ends_string[token]:
                break
            self.model.push_token(token)
            chars += vocab.texts[token]
            steps += 1
        return chars[:max_length] if max_length is not None else chars

    def constrained(self, pattern: Pattern, min_length: int, max_length: int | None, ends: torch.Tensor) -> str:
        """Text that fully matches `pattern`, token by token; the model may stop (pick one of the token
        ids `ends`) once it is a match."""
        vocab, chars, steps = self.model.vocab, "", 0
        states = pattern.start
        while True:
            can_end = pattern.is_match(states) and len(chars) >= min_length
            if self.spent() or steps >= self.opt.max_string_tokens:
                break
            moves = vocab.pattern_moves(pattern, states)
            keep = torch.ones(len(moves.next_states), dtype=torch.bool)
            if max_length is not None:
                keep = moves.need <= max_length - len(chars)
            ids = moves.ids[keep]
            if len(ids) == 0:
                break
            if len(ids) == 1 and not can_end:  # the only way on: no need to ask the model
                token = int(ids[0])
            else:
                among = torch.cat([ids, ends]) if can_end else ids
                token = self.pick(self.model.next_logits(among).index_select(0, among))
                token = int(among[token])
                if token not in moves.index:  # an end token: the model is done with this value
                    break
            self.model.push_token(token)
            chars += vocab.texts[token]
            states = moves.next_states[moves.index[token]]
            steps += 1
        if not (pattern.is_match(states) and len(chars) >= min_length):
            tail = pattern.completion(states, min_length - len(chars))  # out of tokens: finish without the model
            chars += tail
            self.push(tail)
        return chars

    def number(self, node: Numeric) -> int | float:
        """Digits (and a sign / point) chosen token by token, kept to prefixes of in-range numbers."""
        vocab, text, steps = self.model.vocab, "", 0
        numeric = vocab.numeric_ids()
        while True:
            can_end = _number_complete(node, text)
            if self.spent() or steps >= self.opt.max_string_tokens:
                break
            ids = [i for i in numeric if _number_feasible(node, text + vocab.texts[i])]
            if not ids:
                break
            if len(ids) == 1 and not can_end:
                token = ids[0]
            else:
                among = torch.tensor(ids + (vocab.number_end_ids if can_end else []), dtype=torch.long)
                token = int(among[self.pick(self.model.next_logits(among).index_select(0, among))])
                if token not in ids:  # an end token
                    break
            self.model.push_token(token)
            text += vocab.texts[token]
            steps += 1
        if _number_complete(node, text):
            return int(text) if node.integer else _as_number(text)
        value = _fallback_number(node)  # out of tokens (or a dead end): a valid number without the model
        tail = _json(value)
        if tail.startswith(text):
            self.push(tail[len(text) :])
        return value


def _as_number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


_NUMBER_PREFIX = re.compile(r"(-?)(\d*)(?:(\.)(\d*))?")


def _digits(node: Numeric) -> int:
    """Most integer digits a value of `node` can need."""
    bounds = [abs(b) for b in (node.minimum, node.maximum) if b is not None]
    if len(bounds) == 2:
        return max(1, len(str(int(max(bounds)))))
    return INTEGER_DIGITS


def _number_feasible(node: Numeric, text: str) -> bool:
    """Can `text` still grow into a JSON number within `node`'s bounds? (interval test, may err
    towards yes at open bounds: `_number_complete` is exact)"""
    m = _NUMBER_PREFIX.fullmatch(text)
    if m is None:
        return False
    sign, whole, dot, frac = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    if dot and (node.integer or not whole or len(frac) > FRACTION_DIGITS):
        return False
    if len(whole) > 1 and whole[0] == "0":
        return False
    limit = _digits(node)
    if len(whole) > limit:
        return False
    # spans [a, b] of the values the prefix can still become; b is the largest one writable (a
    # float has at most FRACTION_DIGITS decimals), so the bound test below is exact at open bounds
    step = Decimal(1) if node.integer else Decimal(10) ** -FRACTION_DIGITS
    if dot:
        low = Decimal(f"{whole}.{frac}" if frac else whole)
        spans = [(low, low + Decimal(10) ** -len(frac) - step)]
    elif not whole:
        spans = [(Decimal(0), Decimal(10) ** limit - step)]
    elif whole == "0":
        spans = [(Decimal(0), Decimal(1) - step)]
    else:
        first = int(whole)
        spans = [(Decimal(first * 10**k), (first + 1) * Decimal(10) ** k - step) for k in range(limit - len(whole) + 1)]
    if sign:
        spans = [(-b, -a) for a, b in spans]
    lo = Decimal(str(node.minimum)) if node.minimum is not None else None
    hi = Decimal(str(node.maximum)) if node.maximum is not None else None
    return any(
        (hi is None or a < hi or (a == hi and not node.exclusive_max))
        and (lo is None or b > lo or (b == lo and not node.exclusive_min))
        for a, b in spans
    )


def _number_complete(node: Numeric, text: str) -> bool:
    """Is `text` a whole JSON number within `node`'s bounds?"""
    m = _NUMBER_PREFIX.fullmatch(text)
    if m is None or not m.group(2) or (m.group(3) and not m.group(4)) or not _number_feasible(node, text):
        return False
    value = Decimal(text)
    if node.minimum is not None:
        lo = Decimal(str(node.minimum))
        if value < lo or (node.exclusive_min and value == lo):
            return False
    if node.maximum is not None:
        hi = Decimal(str(node.maximum))
        if value > hi or (node.exclusive_max and value == hi):
            return False
    return True


def _bounded(node: Numeric) -> bool:
    return node.minimum is not None and node.maximum is not None


def _fallback_number(node: Numeric) -> int | float:
    """A valid value of `node` picked without the model: 0 if allowed, else a point inside the bounds."""
    lo, hi = node.minimum, node.maximum
    if _number_complete(node, "0"):
        return 0 if node.integer else 0.0
    if node.integer:
        return int(lo if lo is not None and lo > 0 else hi)
    if lo is not None and hi is not None:
        return (lo + hi) / 2
    return float(lo + 1 if lo is not None else hi - 1)


def leads(node: Node) -> list[str]:
    """Texts a value of `node` can start with, used to weigh branches against each other."""
    node = _deref(node)
    if isinstance(node, Choice):
        return [_json(v) for v in node.values]
    if isinstance(node, Text):
        return ['"']
    if isinstance(node, Numeric):
        return (["-"] if node.minimum is None or node.minimum < 0 else []) + list("0123456789")
    if isinstance(node, Obj):
        return ["{"]
    if isinstance(node, Arr):
        return ["["]
    return [t for b in node.branches for t in leads(b)]


def minimal_value(node: Node, depth: int = 0) -> Any:
    """The smallest valid value of `node`, made without a model (used once the budget is spent)."""
    node = _deref(node)
    if depth > 2 * MAX_DEPTH:
        raise SchemaError("schema recursion has no finite value")
    if isinstance(node, Choice):
        return node.values[0]
    if isinstance(node, Text):
        if node.pattern is not None:
            return node.pattern.completion(node.pattern.start, node.min_length)
        return "x" * node.min_length
    if isinstance(node, Numeric):
        return _fallback_number(node)
    if isinstance(node, Obj):
        return {k: minimal_value(v, depth + 1) for k, v in node.fields}
    if isinstance(node, Arr):
        n = max(node.min_items, len(node.prefix) if node.items is None else 0)
        out = []
        for i in range(n):
            sub = node.prefix[i] if i < len(node.prefix) else node.items
            if node.unique:
                out.append(sub.values[i])
            else:
                out.append(minimal_value(sub, depth + 1))
        return out
    # prefer a branch that needs no recursion (a null or enum) when filling in an Optional
    simple = [b for b in node.branches if isinstance(_deref(b), Choice)]
    return minimal_value((simple or node.branches)[0], depth + 1)
