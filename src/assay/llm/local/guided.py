"""Schema-guided JSON decoding on llguidance (the grammar engine of vLLM, SGLang and llama.cpp).

A JSON Schema is compiled to an llguidance grammar (`compile_schema`, cached); each request runs an
`llguidance.LLMatcher` on it beside the model (`generate_json`):

- **forced tokens** (`compute_ff_tokens`: braces, keys, separators, the only way a value can
  go on) are appended without asking the model; they run through it together with the next
  sampled token, in one forward pass;
- otherwise the matcher's **token mask** gives the allowed tokens and the model samples among them
  (`assay.sampling.pick`: greedy at temperature 0, else temperature and top-p over the allowed
  tokens only). When few tokens are allowed (an enum, a hex digit) only their rows of the output
  layer are computed;
- the answer ends when the grammar is complete (`is_stopped`: nothing but EOS may follow; EOS is
  not part of the text) or when the model picks EOS where the grammar allows it;
- **budget**: `max_tokens` bounds the tokens written with the model (forced ones included). Once
  it is spent, the rest of the JSON is completed without the model (`_close`: at each step the
  grammar's allowed token that closes the most: `"`, then `}` / `]`, then `,`, then the shortest
  other token), so the answer still validates; finish_reason is then "length" and those closing
  tokens count in the usage;
- **free strings** may be capped (`max_string_tokens`): past the cap only tokens that close the
  string (start with `"`) are allowed, as soon as the grammar allows one (after minLength / a
  pattern is satisfied). llguidance has no per-string token limit of its own; maxLength counts
  characters.

Separators are fixed (`", "` and `": "`, no other whitespace), so the text is what
`json.dumps(value)` would write; `oneOf` is decoded as `anyOf` (exact when the branches exclude
each other, as in pydantic's discriminated unions). Schema features llguidance cannot enforce
(`not`, `if/then`, `uniqueItems`, look-around or back-references in a `pattern`, unsatisfiable
bounds, unknown keywords or formats, remote `$ref` ...) raise `SchemaError` (an `LLMError`, one
line) before any decoding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import torch

from assay.llm.types import LLMError
from assay.sampling import penalize, pick

# Default JSON layout (and oneOf read as anyOf); a schema's own "x-guidance" options override these.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ", "coerce_one_of": True}
# Compute only the allowed rows of the output layer when at most 1/SUBSET of the vocabulary is allowed.
SUBSET = 4
# Tokens the closing phase may write after max_tokens before it gives up (never reached by a schema
# whose strings, numbers and arrays can end; a pathological pattern could need more).
CLOSING_LIMIT = 4096
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN_ARRAY, _OPEN_OBJECT, _CLOSE = ord("["), ord("{"), (ord("]"), ord("}"))


class SchemaError(LLMError):
    """A JSON Schema the guided decoder cannot enforce (refused before decoding)."""


def _llguidance():
    try:
        import llguidance
        import llguidance.hf
    except ImportError:
        raise LLMError("schema-guided decoding needs llguidance: pip install llguidance==1.9.1") from None
    return llguidance


@lru_cache(maxsize=64)
def _compile(schema_text: str) -> str:
    llguidance = _llguidance()
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema_text, defaults=JSON_OPTIONS)
    except ValueError as exc:
        raise SchemaError(f"not a JSON Schema: {exc}") from None
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise SchemaError(f"unsupported JSON Schema: {messages[0] if messages else 'rejected'}")
    return grammar


def compile_schema(schema: dict[str, Any] | str) -> str:
    """JSON Schema (dict or JSON text) -> llguidance grammar (serialised, cached per schema);
    SchemaError if llguidance cannot enforce it."""
    if isinstance(schema, str):
        return _compile(schema)
    if not isinstance(schema, dict):
        raise SchemaError(f"a JSON Schema must be an object, not {type(schema).__name__}")
    try:
        text = json.dumps(schema)  # (not sort_keys: properties are written in the schema's order)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"not a JSON Schema: {exc}") from None
    return _compile(text)


class TokenTable:
    """What the decoder needs to know about one tokenizer, built once per model (~0.5 s).

    `llg`: the llguidance tokenizer; `size`: width of the model's logits (tokens past the
    tokenizer's vocabulary are never allowed); `token_bytes[i]`: token i's bytes (b"" for special
    tokens); `quote_start` [V] bool: the token starts with `"`; `close_rank` [V]: the closing
    phase's preference (lower first).
    """

    def __init__(self, tokenizer, vocab_size: int, eos_ids: Sequence[int]):
        llguidance = _llguidance()
        eos = sorted(int(i) for i in eos_ids) or None
        self.llg = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos)
        self.size = vocab_size
        self.eos_ids = frozenset(int(i) for i in (eos or [self.llg.eos_token]))
        self.token_bytes = [
            b"" if i >= self.llg.vocab_size or self.llg.is_special_token(i) else self.llg.decode_bytes([i])
            for i in range(vocab_size)
        ]
        first = np.array([b[0] if b else -1 for b in self.token_bytes])
        lengths = np.array([len(b) for b in self.token_bytes])
        kind = np.full(vocab_size, 3)
        kind[first == ord("0")] = 4  # after the others: "0" could repeat forever in "0.000..."
        kind[first == ord(",")] = 2
        kind[(first == ord("}")) | (first == ord("]"))] = 1
        kind[first == _QUOTE] = 0
        kind[first < 0] = 9
        self.close_rank = kind * 256 + np.minimum(lengths, 255)
        self.quote_start = first == _QUOTE
        self.is_eos = np.zeros(vocab_size, dtype=bool)
        self.is_eos[[i for i in self.eos_ids if i < vocab_size]] = True

    def matcher(self, grammar: str):
        matcher = _llguidance().LLMatcher(self.llg, grammar, log_level=0)
        if matcher.is_error():
            raise SchemaError(f"unsupported JSON Schema: {matcher.get_error()}")
        return matcher

    def allowed(self, matcher) -> np.ndarray:
        """The token ids the grammar allows next (ascending)."""
        bits = np.unpackbits(np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
        return np.flatnonzero(bits[: self.size])

    def decode(self, tokens: Sequence[int]) -> str:
        return b"".join(self.token_bytes[t] for t in tokens).decode("utf-8", errors="replace")


class TokenModel(Protocol):
    """What the decoder needs from a language model positioned after the prompt (`KVSession`)."""

    def push(self, ids: Sequence[int]) -> None:
        """Append tokens (they may run lazily, with the next `next_logits`)."""

    def next_logits(self, among: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits: [V], or only those of the ids in `among`, in that order."""


@dataclass
class GuidedOptions:
    temperature: float = 0.0
    top_p: float | None = None
    generator: torch.Generator | None = None
    max_tokens: int = 4096
    max_string_tokens: int | None = None  # sampled tokens per string before it must close (None: no cap)
    repetition_penalty: float = 1.0  # loop guards per string and across an array's items (sampling.penalize)
    no_repeat_ngram: int = 0


@dataclass
class GuidedResult:
    text: str
    tokens: list[int]  # the answer's tokens (forced, sampled and closing; no EOS)
    finish_reason: str  # "stop" (the JSON ended) or "length" (completed without the model after max_tokens)
    sampled: int  # tokens the model chose
    forced: int  # tokens the grammar forced (run through the model, no choice)
    closing: int  # tokens written without the model after max_tokens ran out
    grammar_s: float  # time in the grammar engine: masks, forced tokens, consuming tokens

    @property
    def value(self) -> Any:
        return json.loads(self.text)


class StringState:
    """Where the answer's bytes stand: inside a JSON string or not (and after a backslash), and
    how many sampled tokens the current string has."""

    def __init__(self):
        self.inside = self.escaped = False
        self.sampled = 0
        self.opened = 0  # strings started so far
        self.scope: int | None = None  # the array the current string is an item of (None: not in one)
        self._stack: list[int | None] = []  # open containers: an array's number, None for an object
        self._arrays = 0

    def feed(self, data: bytes) -> None:
        for byte in data:
            if not self.inside:
                if byte == _QUOTE:
                    self.inside, self.sampled = True, 0
                    self.opened += 1
                    self.scope = self._stack[-1] if self._stack else None
                elif byte == _OPEN_ARRAY:
                    self._arrays += 1
                    self._stack.append(self._arrays)
                elif byte == _OPEN_OBJECT:
                    self._stack.append(None)
                elif byte in _CLOSE and self._stack:
                    self._stack.pop()
            elif self.escaped:
                self.escaped = False
            elif byte == _BACKSLASH:
                self.escaped = True
            elif byte == _QUOTE:
                self.inside = False


def generate_json(grammar: str, model: TokenModel, table: TokenTable, options: GuidedOptions) -> GuidedResult:
    """Decode one answer of `grammar` (from `compile_schema`) with `model`; see the module docstring."""
    matcher = table.matcher(grammar)
    strings = StringState()
    out: list[int] = []
    # what the loop guards look at: the tokens sampled in the current string, and in the earlier items
    # of the array it is an item of (so items do not repeat each other; other fields may share words)
    content: list[int] = []
    guard = options.repetition_penalty != 1.0 or options.no_repeat_ngram > 0
    sampled = forced = closing = 0
    grammar_s = 0.0
    finish = "stop"
    cap = options.max_string_tokens

    def consume(tokens: list[int]) -> None:
        if not matcher.consume_tokens(tokens):
            raise LLMError(f"guided decoding: the grammar refused a token ({matcher.get_error()})")
        out.extend(tokens)
        opened, scope = strings.opened, strings.scope
        for token in tokens:
            strings.feed(table.token_bytes[token])
        if strings.opened != opened and (strings.scope is None or strings.scope != scope):
            content.clear()  # a new field's string: its own history (fields may share words)

    while True:
        started = time.perf_counter()
        if matcher.is_stopped():
            grammar_s += time.perf_counter() - started
            break
        if len(out) >= options.max_tokens:
            closing = _close(matcher, table, consume)
            grammar_s += time.perf_counter() - started
            finish = "length"
            break
        ff = matcher.compute_ff_tokens()
        if ff:
            consume(ff)
            model.push(ff)
            forced += len(ff)
            grammar_s += time.perf_counter() - started
            continue
        ids = table.allowed(matcher)
        grammar_s += time.perf_counter() - started
        if len(ids) == 0:
            raise LLMError(f"guided decoding: no token is allowed ({matcher.get_error() or 'dead end'})")
        asked = len(ids) > 1
        if asked:
            if cap is not None and strings.inside and not strings.escaped and strings.sampled >= cap:
                closers = ids[table.quote_start[ids]]
                if len(closers):
                    ids = closers
            among = torch.from_numpy(ids)
            logits = model.next_logits(among if len(ids) * SUBSET <= table.size else None)
            if logits.shape[0] != len(ids):
                logits = logits[among]
            if guard and strings.inside:
                logits = penalize(logits, content, options.repetition_penalty, options.no_repeat_ngram, among)
            token = int(ids[pick(logits, options.temperature, options.top_p, options.generator)])
        else:
            token = int(ids[0])
        if token in table.eos_ids:  # allowed only where the JSON is complete
            break
        if asked:
            sampled += 1
            strings.sampled += strings.inside
            if strings.inside:
                content.append(token)
        else:
            forced += 1
        started = time.perf_counter()
        consume([token])
        grammar_s += time.perf_counter() - started
        model.push([token])
    return GuidedResult(table.decode(out), out, finish, sampled, forced, closing, grammar_s)


def _close(matcher, table: TokenTable, consume) -> int:
    """Complete the JSON without the model: forced tokens, else the allowed token with the lowest
    `close_rank`. Returns the number of tokens written."""
    written = 0
    while not matcher.is_stopped() and not matcher.is_accepting():
        if written >= CLOSING_LIMIT:
            raise LLMError(f"guided decoding: the JSON was not complete {CLOSING_LIMIT} tokens after max_tokens")
        tokens = matcher.compute_ff_tokens()
        if not tokens:
            ids = table.allowed(matcher)
            ids = ids[~table.is_eos[ids]]
            if len(ids) == 0:
                raise LLMError(f"guided decoding: no token is allowed ({matcher.get_error() or 'dead end'})")
            tokens = [int(ids[np.argmin(table.close_rank[ids])])]
        consume(tokens)
        written += len(tokens)
    return written
