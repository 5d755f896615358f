"""The schema-guided decoder and its regex engine, driven by a toy language model (no LLM).

The toy model is a scoring function of the text so far over a small vocabulary (single characters
plus a few multi-character tokens, some of them ones a JSON string must never contain), so every
rule of the walker is exercised in milliseconds. Validity is always checked with pydantic.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from typing import Literal

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from assay.errors import AssayError
from assay.llm.local_guided import GuidedOptions, SchemaError, Vocab, compile_schema, generate_json, minimal_value
from assay.llm.local_pattern import PatternError, compile_pattern
from assay.llm.local_sampling import pick

MULTI = ['", "', '": "', '",', '"}', ' "', '"', "ab", "ff", "00", "#a", "hello", " world", "a\\b", "x\ny", "\t", "12"]
TOY_TEXTS = [None] + list(string.printable[:95]) + MULTI + ["\ufffd"]


class ToyModel:
    """A deterministic toy LM implementing local_guided.TokenModel.

    logits(context) -> [V] gives the next-token scores after `context`; `text` is everything the
    decoder has committed, so a test can check the model saw exactly the returned JSON.
    """

    def __init__(self, logits):
        self.vocab = Vocab(TOY_TEXTS)
        self.logits = logits
        self.text = ""
        self.pending = ""
        self.committed = 0
        self._options: list[str] = []

    @property
    def consumed(self) -> int:  # pending text counts: the budget must see it before it is run
        return self.committed + len(self.encode(self.pending))

    def encode(self, text: str) -> list[int]:  # greedy longest match
        ids, i = [], 0
        by_text = {t: k for k, t in enumerate(self.vocab.texts) if t}
        while i < len(text):
            for n in range(min(6, len(text) - i), 0, -1):
                if text[i : i + n] in by_text:
                    ids.append(by_text[text[i : i + n]])
                    i += n
                    break
        return ids

    def _flush(self):
        self.committed += len(self.encode(self.pending))
        self.text += self.pending
        self.pending = ""

    def push_text(self, text):
        self.pending += text

    def push_token(self, token):
        self._flush()
        self.committed += 1
        self.text += self.vocab.texts[token]

    def next_logits(self, among=None):
        self._flush()
        logits = self.logits(self.text)
        if among is None:
            return logits
        return torch.full_like(logits, -math.inf).index_copy_(0, among, logits[among])

    def score(self, texts):
        # Unlike the real session (which tokenises pending + option together), the toy runs the
        # pending text first: its char-level tokens would otherwise make options differ in how the
        # shared text tokenises, which the bonus-heavy toy logits exaggerate.
        self._flush()
        self._options = list(texts)
        out = []
        for t in texts:
            ctx, total = self.text, 0.0
            for tok in self.encode(t):
                total += float(torch.log_softmax(self.logits(ctx), -1)[tok])
                ctx += self.vocab.texts[tok]
            out.append(total)
        return torch.tensor(out)

    def commit(self, index):
        self.committed += len(self.encode(self._options[index]))
        self.text += self._options[index]


def noise_logits(seed: int, scale: float = 3.0):
    """Pseudo-random logits per context: a different but reproducible 'model' for each seed."""

    def logits(context: str) -> torch.Tensor:
        digest = hashlib.sha256(f"{seed}|{context}".encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        return torch.randn(len(TOY_TEXTS), generator=gen) * scale

    return logits


def prefer(*texts: str, bonus: float = 20.0):
    """Logits that strongly favour the tokens that continue one of `texts` (started where a value starts)."""
    ids = {t: i for i, t in enumerate(TOY_TEXTS) if t}

    def logits(context: str) -> torch.Tensor:
        out = torch.zeros(len(TOY_TEXTS))
        for want in texts:
            for cut in range(len(want) - 1, -1, -1):  # the longest part of `want` already written
                if cut == 0 and not context.endswith((": ", "[", ", ")) and context:
                    break  # start `want` only where a value starts
                if context.endswith(want[:cut]):
                    for text, i in ids.items():  # every token that writes the next part of `want`
                        if want[cut:].startswith(text):
                            out[i] += bonus
                    break
        return out

    return logits


def always(text: str, bonus: float = 20.0):
    """Logits that favour one token everywhere."""
    index = TOY_TEXTS.index(text)

    def logits(context: str) -> torch.Tensor:
        out = torch.zeros(len(TOY_TEXTS))
        out[index] = bonus
        return out

    return logits


def run(schema, logits, **options):
    model = ToyModel(logits)
    result = generate_json(schema, model, GuidedOptions(**options))
    return result, model


# --- schemas as a pipeline would write them ---


class Small(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mood: Literal["happy", "sad", "calm"]
    tempo: int = Field(ge=40, le=200)
    bars: int = Field(ge=1, le=8)
    loud: bool
    title: str = Field(max_length=30)
    tags: list[Literal["a", "b", "c"]] = Field(min_length=1, max_length=3)
    ratio: float = Field(gt=0, lt=1)
    code: Literal[1, 2, 3]


class Swatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hex: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    weight: Literal["light", "medium", "heavy"]


class Palette(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=3, max_length=12)
    swatches: list[Swatch] = Field(min_length=2, max_length=2)
    accent: Swatch


class HexRow(BaseModel):
    row: list[Swatch] = Field(min_length=3, max_length=3)
    plain: list[str] = Field(min_length=0, max_length=3)


class Maybe(BaseModel):
    note: str | None = None
    level: Literal["low", "high"] | None = None
    count: int | None = Field(default=None, ge=0, le=1000)
    swatch: Swatch | None = None


class Tree(BaseModel):
    label: Literal["x", "y"]
    children: list[Tree] = Field(default_factory=list, max_length=2)


SCHEMAS = [Small, Palette, HexRow, Maybe, Tree]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    which=st.sampled_from(SCHEMAS),
    temperature=st.sampled_from([0.0, 0.7, 1.5]),
    top_p=st.sampled_from([None, 0.9]),
)
def test_output_always_validates_and_is_what_the_model_saw(seed, which, temperature, top_p):
    gen = torch.Generator().manual_seed(seed)
    result, model = run(
        which.model_json_schema(), noise_logits(seed), temperature=temperature, top_p=top_p, generator=gen
    )
    which.model_validate_json(result.text)  # raises if invalid
    assert json.loads(result.text) == result.value
    assert result.finish_reason == "stop"
    assert json.loads(model.text + model.pending) == result.value  # (number text may differ: 0.50 vs 0.5)
    assert model.consumed >= len(model.encode(model.text)) // 2  # chunks tokenise a little worse than the whole


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), budget=st.integers(0, 60), which=st.sampled_from(SCHEMAS))
def test_budget_cuts_short_but_stays_valid(seed, budget, which):
    result, model = run(which.model_json_schema(), noise_logits(seed), max_tokens=budget, temperature=1.0)
    which.model_validate_json(result.text)
    assert model.consumed <= budget + 25  # checked before each choice: one key + option may straddle it
    if budget < 5:
        assert result.finish_reason == "length"


def test_enum_follows_the_model_and_temperature_zero_is_greedy():
    schema = Small.model_json_schema()
    result, _ = run(schema, prefer('"sad"', '"c"', "false", "3"))
    assert result.value["mood"] == "sad"
    assert result.value["tags"][0] == "c"
    assert result.value["loud"] is False
    assert result.value["code"] == 3


def test_enum_sampling_is_seeded_and_spread():
    schema = {"enum": ["p", "q", "r", "s"]}
    flat = lambda context: torch.zeros(len(TOY_TEXTS))  # every option equally likely
    seen = []
    for seed in range(40):
        result, _ = run(schema, flat, temperature=1.0, generator=torch.Generator().manual_seed(seed))
        again, _ = run(schema, flat, temperature=1.0, generator=torch.Generator().manual_seed(seed))
        assert result.value == again.value
        seen.append(result.value)
    assert set(seen) == {"p", "q", "r", "s"}


def test_free_string_ends_when_the_model_closes_it():
    result, _ = run({"type": "string"}, prefer('"hello world"'))
    assert result.value == "hello world"
    assert result.text == '"hello world"'


def test_string_never_contains_quotes_backslashes_or_newlines():
    # a model that loves the forbidden tokens: they must be masked, and never end a string early
    ids = {t: i for i, t in enumerate(TOY_TEXTS) if t}

    def naughty(context):
        out = torch.zeros(len(TOY_TEXTS))
        for t in ("a\\b", "x\ny", "\t", "\ufffd"):
            out[ids[t]] = 50.0
        out[ids["z"]] = 10.0
        return out

    result, _ = run({"type": "string", "minLength": 2, "maxLength": 9}, naughty)
    assert result.value == "zzzzzzzzz"


def test_min_and_max_length_and_the_token_cap():
    assert len(run({"type": "string", "minLength": 4}, always('"'))[0].value) == 4
    result, _ = run({"type": "string", "maxLength": 5}, prefer('"hello world"'))
    assert result.value == "hello"
    capped, model = run({"type": "string"}, noise_logits(3, scale=0.1), max_string_tokens=3)
    assert model.consumed <= 3 + 2
    assert 0 <= len(capped.value) <= 3 * 6


def test_hex_pattern_even_when_the_model_wants_to_stop():
    pattern = re.compile(r"^#[0-9a-fA-F]{6}$")
    result, _ = run(Swatch.model_json_schema(), always('"'))  # always wants to close the string
    assert pattern.match(result.value["hex"])
    for seed in range(20):
        result, _ = run({"type": "string", "pattern": pattern.pattern}, noise_logits(seed), temperature=1.0)
        assert pattern.match(result.value)
    steered, _ = run({"type": "string", "pattern": pattern.pattern}, prefer('"#ff00ab'))
    assert steered.value == "#ff00ab"


def test_word_limited_pattern_and_min_length_fallback():
    title = {"type": "string", "pattern": r"^\S+( \S+){0,5}$", "maxLength": 40}
    for seed in range(10):
        result, _ = run(title, noise_logits(seed), temperature=1.0)
        assert 1 <= len(result.value.split()) <= 6 and len(result.value) <= 40
        assert re.fullmatch(title["pattern"], result.value)
    # the token cap hits before minLength: the match is finished (long enough) without the model
    short = {"type": "string", "pattern": "^[a-z]+$", "minLength": 8}
    result, _ = run(short, noise_logits(1), max_string_tokens=2)
    assert re.fullmatch("[a-z]{8,}", result.value)


def test_numbers_stay_in_bounds():
    for seed in range(15):
        result, _ = run({"type": "integer", "minimum": -50, "maximum": 12345}, noise_logits(seed), temperature=1.0)
        assert isinstance(result.value, int) and -50 <= result.value <= 12345
        result, _ = run({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, noise_logits(seed))
        assert 0 < result.value < 1
    assert run({"type": "integer"}, prefer("12,"))[0].value == 12


def test_optional_and_array_length_decisions():
    assert run(Maybe.model_json_schema(), prefer("null"))[0].value == {
        "note": None,
        "level": None,
        "count": None,
        "swatch": None,
    }
    wants = ('note": "ok"', 'level": "high"', 'count": 7,', 'swatch": {"hex": "#00ff00"')
    full, _ = run(Maybe.model_json_schema(), prefer(*wants))
    assert full.value["note"] == "ok" and full.value["level"] == "high" and full.value["count"] == 7
    assert full.value["swatch"]["hex"] == "#00ff00"
    schema = {"type": "array", "items": {"enum": ["u", "v"]}, "minItems": 1, "maxItems": 5}
    assert run(schema, always("]"))[0].value == ["u"]  # stops as soon as allowed
    assert run(schema, prefer('"u", "v"', '"v", "v"'))[0].value == ["u", "v", "v", "v", "v"]  # on to maxItems


def test_unique_enum_items_and_prefix_items():
    schema = {"type": "array", "items": {"enum": ["u", "v", "w"]}, "uniqueItems": True, "minItems": 3}
    assert sorted(run(schema, prefer('"u"'))[0].value) == ["u", "v", "w"]
    pair = {"type": "array", "prefixItems": [{"type": "boolean"}, {"const": "k"}], "items": False, "minItems": 2}
    assert run(pair, prefer("true"))[0].value == [True, "k"]


def test_unsupported_schemas_fail_up_front():
    bad = [
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": "(?=a)b"},
        {"type": "string", "pattern": r"(a)\1"},
        {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        {"not": {"type": "null"}},
        {"$ref": "#/$defs/Missing"},
        {"allOf": [{"type": "string"}, {"maxLength": 3}]},
        {"type": "integer", "minimum": 5, "maximum": 1},
        {"type": "string", "pattern": "^[a-z]{5}$", "maxLength": 3},
    ]
    for schema in bad:
        with pytest.raises(SchemaError):
            compile_schema(schema)
    assert issubclass(SchemaError, AssayError)


def test_minimal_values_validate():
    for which in SCHEMAS:
        which.model_validate(minimal_value(compile_schema(which.model_json_schema())))


# --- the regex engine ---

PATTERNS = [
    (r"^#[0-9a-fA-F]{6}$", ["#a0B1c2", "#000000"], ["#00000", "#0000000", "a00000", "#gggggg"]),
    (r"^[a-z]+(-[a-z]+)*$", ["a", "ab-cd-e"], ["", "-a", "a-", "a--b", "A"]),
    (r"^(red|green|blue)?\d{2,3}$", ["12", "red123", "blue99"], ["1", "red1234", "redd12"]),
    (r"\w+\s\S", ["ab_1 x"], ["ab  x", " x"]),
    (r"^[^\"]{1,3}\.?$", ["abc", "ab.", "..."], ["", "abcd."]),
    (r"^a.c$", ["abc", "a-c"], ["ac", "a\nc"]),
    (r"^x{2,}y?$", ["xx", "xxxxy"], ["x", "xy"]),
]


@pytest.mark.parametrize(("regex", "good", "bad"), PATTERNS)
def test_pattern_matches_like_re(regex, good, bad):
    pattern = compile_pattern(regex)
    for text in good:
        assert pattern.fullmatch(text) and re.search(regex, text), text
    for text in bad:
        assert not pattern.fullmatch(text), text
    shortest = pattern.shortest_completion(pattern.start)
    assert pattern.fullmatch(shortest) and re.search(regex, shortest)
    assert len(shortest) == pattern.remaining(pattern.start)


def test_pattern_errors():
    for regex in ["(?<=a)b", r"\bword", "a{3,1}", "[z-a]", "(ab", "*a", r"a\1"]:
        with pytest.raises(PatternError):
            compile_pattern(regex)


# --- sampling ---


def test_pick_greedy_top_p_and_seed():
    scores = torch.tensor([0.0, 3.0, 2.9, -math.inf])
    assert pick(scores, 0.0) == 1
    draws = {pick(scores, 1.0, 0.5, torch.Generator().manual_seed(s)) for s in range(50)}
    assert draws == {1}  # top-p 0.5 keeps only the most likely entry here
    wide = {pick(scores, 1.0, None, torch.Generator().manual_seed(s)) for s in range(200)}
    assert wide == {0, 1, 2}  # never the -inf one
    assert [pick(scores, 1.0, None, torch.Generator().manual_seed(7)) for _ in range(3)] == [
        pick(scores, 1.0, None, torch.Generator().manual_seed(7))
    ] * 3


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), temperature=st.sampled_from([0.0, 1.0, 1.5]))
def test_music_payloads_are_always_valid_for_the_pipeline(seed, temperature):
    """The real payload schema of `assay synth configs`, decoded from noise: every answer passes
    the pipeline's own format / schema / palette checks."""
    from assay.music.schema import payload_json_schema, validity

    result, _ = run(
        payload_json_schema(),
        noise_logits(seed),
        temperature=temperature,
        generator=torch.Generator().manual_seed(seed),
    )
    check = validity(result.text)
    assert (check["format_valid"], check["schema_valid"], check["palette_valid"]) == (1, 1, 1), check["error"]
