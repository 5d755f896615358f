"""The schema-guided decoder (assay.llm.local.guided, on llguidance) with the real SmolLM2 tokenizer
and stand-in models instead of the network: random logits (a different "model" per seed) and
models steered toward given texts. No weights are loaded, so every rule runs in milliseconds.
Validity is always checked by pydantic or by the music pipeline's own validity()."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from assay.errors import AssayError
from assay.llm.types import ChatRequest, LLMError
from tests.llm.conftest import needs_smollm2

pytestmark = needs_smollm2  # (a skip outside CI, a failure under CI=true)


def music():
    """The configs step's payload schema and validity() (wherever the music package keeps them)."""
    try:
        from assay.music.payload import payload_json_schema, validity
    except ImportError:  # (older layout)
        from assay.music.schema import payload_json_schema, validity
    return payload_json_schema(), validity


@pytest.fixture(scope="module")
def table():
    from assay.llm.local import load_tokenizer
    from assay.llm.local.guided import TokenTable

    tokenizer = load_tokenizer("smollm2")
    return TokenTable(tokenizer, len(tokenizer), {tokenizer.eos_token_id})


class Noise:
    """Random logits: a different but reproducible 'model' per seed. Counts the times it is asked."""

    def __init__(self, table, seed: int, scale: float = 3.0):
        self.size, self.scale = table.size, scale
        self.gen = torch.Generator().manual_seed(seed)
        self.calls = 0

    def push(self, ids):
        pass

    def next_logits(self, among=None):
        self.calls += 1
        return torch.randn(self.size if among is None else len(among), generator=self.gen) * self.scale


_BY_BYTES: dict[int, dict[bytes, list[int]]] = {}


def _by_bytes(table) -> dict[bytes, list[int]]:
    """Token ids per token text (bytes), built once per table."""
    if id(table) not in _BY_BYTES:
        index: dict[bytes, list[int]] = {}
        for i, piece in enumerate(table.token_bytes):
            if piece:
                index.setdefault(piece, []).append(i)
        _BY_BYTES[id(table)] = index
    return _BY_BYTES[id(table)]


class Steer:
    """Logits that favour the tokens continuing one of `targets` ((text, bonus) pairs) from what has
    been written so far; tokens continuing no target get 0. `eos` is the EOS token's logit."""

    def __init__(self, table, *targets: tuple[str, float], eos: float = 0.0):
        self.table = table
        self.targets = [(text.encode(), bonus) for text, bonus in targets]
        self.eos = eos
        self.written = b""
        self.by_bytes = _by_bytes(table)

    def push(self, ids):
        self.written += b"".join(self.table.token_bytes[i] for i in ids)

    def next_logits(self, among=None):
        logits = torch.zeros(self.table.size)
        for text, bonus in self.targets:
            if text.startswith(self.written):
                rest = text[len(self.written) :]
                for n in range(1, min(len(rest), 32) + 1):
                    for i in self.by_bytes.get(rest[:n], ()):
                        logits[i] = max(float(logits[i]), bonus)
        for i in self.table.eos_ids:
            logits[i] = self.eos
        return logits if among is None else logits[among]


def decode(table, schema, model, **options):
    """One answer; free strings capped at 16 sampled tokens and answers at 800 tokens unless said."""
    from assay.llm.local.guided import GuidedOptions, compile_schema, generate_json

    options = {"max_string_tokens": 16, "max_tokens": 800, **options}
    return generate_json(compile_schema(schema), model, table, GuidedOptions(**options))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- schemas as a pipeline would write them ---


class Small(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mood: Literal["happy", "sad", "calm"]
    tempo: int = Field(ge=40, le=200)
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


class Maybe(BaseModel):
    note: str | None = None
    level: Literal["low", "high"] | None = None
    count: int | None = Field(default=None, ge=0, le=1000)
    swatch: Swatch | None = None


class Tree(BaseModel):
    label: Literal["x", "y"]
    children: list[Tree] = Field(default_factory=list, max_length=2)


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]  # a oneOf in the JSON Schema


SCHEMAS = [Small, Palette, Maybe, Tree, Pet]


# --- validity from noise ---


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), temperature=st.sampled_from([0.0, 1.0, 1.5]), top_p=st.sampled_from([None, 0.9]))
def test_music_payloads_are_always_valid_for_the_pipeline(table, seed, temperature, top_p):
    """The real payload schema of `assay synth configs`, decoded from noise: every answer passes
    the pipeline's own format / schema / palette checks, and the grammar ends it (no EOS needed)."""
    schema, validity = music()
    model = Noise(table, seed)
    result = decode(table, schema, model, temperature=temperature, top_p=top_p, generator=seeded(seed), max_tokens=1500)
    check = validity(result.text)
    assert (check["format_valid"], check["schema_valid"], check["palette_valid"]) == (1, 1, 1), check["error"]
    assert result.finish_reason == "stop" and result.closing == 0
    assert model.calls == result.sampled  # never asked after the closing brace
    assert table.decode(result.tokens) == result.text


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), which=st.sampled_from(SCHEMAS), temperature=st.sampled_from([0.0, 0.7, 1.5]))
def test_small_schemas_always_validate(table, seed, which, temperature):
    result = decode(
        table, which.model_json_schema(), Noise(table, seed), temperature=temperature, generator=seeded(seed)
    )
    which.model_validate_json(result.text)  # raises if invalid
    assert result.finish_reason == "stop" or which is Tree  # (a random tree may outgrow the budget)


def test_separators_are_those_of_json_dumps(table):
    target = {"mood": "sad", "tempo": 90, "loud": False, "title": "Grey", "tags": ["b", "c"], "ratio": 0.25, "code": 2}
    result = decode(table, Small.model_json_schema(), Steer(table, (json.dumps(target), 20.0)))
    assert result.text == json.dumps(target)  # the model's valid answer, exactly
    assert result.value == target


# --- budget ---


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), budget=st.integers(0, 150), which=st.sampled_from(["music", *SCHEMAS]))
def test_budget_exhaustion_still_ends_in_a_valid_answer(table, seed, budget, which):
    schema = music()[0] if which == "music" else which.model_json_schema()
    model = Noise(table, seed)
    result = decode(table, schema, model, max_tokens=budget, temperature=1.0, generator=seeded(seed))
    if which == "music":
        check = music()[1](result.text)
        assert (check["format_valid"], check["schema_valid"], check["palette_valid"]) == (1, 1, 1), check["error"]
    else:
        which.model_validate_json(result.text)
    assert model.calls <= budget  # the model is never asked past the budget
    if result.finish_reason == "length":
        assert len(result.tokens) - result.closing >= budget  # cut only once the budget was spent
    else:
        assert result.closing == 0


def test_no_budget_at_all_completes_without_the_model(table):
    schema, validity = music()
    model = Noise(table, 0)
    result = decode(table, schema, model, max_tokens=0)
    assert model.calls == 0 and result.sampled == 0
    assert result.finish_reason == "length" and result.closing > 100
    check = validity(result.text)
    assert (check["format_valid"], check["schema_valid"], check["palette_valid"]) == (1, 1, 1), check["error"]
    # the closing phase closes free strings at once and takes the first options
    assert result.value["thinking"] == ""


# --- sampling: greedy, seeds, temperature, top-p ---

ENUM = {"enum": ["alpha", "beta", "gamma", "delta"]}


def test_greedy_is_deterministic_and_uses_no_randomness(table):
    schema = Small.model_json_schema()
    a = decode(table, schema, Noise(table, 5), temperature=0.0, generator=seeded(1))
    b = decode(table, schema, Noise(table, 5), temperature=0.0, generator=seeded(99))
    assert a.text == b.text
    steered = Steer(table, ('"alpha"', 4.0), ('"beta"', 3.0))
    assert decode(table, ENUM, steered, temperature=0.0).value == "alpha"  # the argmax


def test_a_seed_fixes_the_sample_and_seeds_differ(table):
    schema = Small.model_json_schema()
    texts = [decode(table, schema, Noise(table, 5), temperature=1.0, generator=seeded(s)).text for s in range(5)]
    again = decode(table, schema, Noise(table, 5), temperature=1.0, generator=seeded(3)).text
    assert again == texts[3]
    assert len(set(texts)) > 1


def test_temperature_spreads_and_top_p_narrows(table):
    def sample(seed, **options):
        model = Steer(table, ('"alpha"', 4.0), ('"beta"', 3.0))
        return decode(table, ENUM, model, generator=seeded(seed), **options).value

    warm = [sample(s, temperature=1.0) for s in range(60)]
    assert {"alpha", "beta"} <= set(warm) and warm.count("alpha") > warm.count("beta")
    assert {sample(s, temperature=1.0, top_p=0.3) for s in range(60)} == {"alpha"}  # only the top tokens
    hot = [sample(s, temperature=5.0) for s in range(60)]
    assert len(set(hot)) >= 3 and hot.count("alpha") < warm.count("alpha")


# --- constraints ---


def test_enum_and_bool_follow_the_model(table):
    target = {"mood": "calm", "tempo": 120, "loud": True, "title": "x", "tags": ["c"], "ratio": 0.5, "code": 3}
    result = decode(table, Small.model_json_schema(), Steer(table, (json.dumps(target), 20.0)))
    assert result.value["mood"] == "calm" and result.value["loud"] is True and result.value["code"] == 3
    # a value outside the enum is impossible: the grammar overrides the model
    wrong = json.dumps({**target, "mood": "angry"})
    assert decode(table, Small.model_json_schema(), Steer(table, (wrong, 20.0))).value["mood"] in {
        "happy",
        "sad",
        "calm",
    }


def test_hex_pattern_holds_even_when_the_model_wants_to_stop(table):
    pattern = re.compile(r"^#[0-9a-fA-F]{6}$")
    closes = Steer(table, ('{"hex": "#', 0.0), ('{"hex": "#"', 30.0))  # loves closing the string at once
    assert pattern.match(decode(table, Swatch.model_json_schema(), closes).value["hex"])
    steered = Steer(table, ('"#ff00ab"', 20.0))
    assert decode(table, {"type": "string", "pattern": pattern.pattern}, steered).value == "#ff00ab"
    for seed in range(10):
        value = decode(table, {"type": "string", "pattern": pattern.pattern}, Noise(table, seed), temperature=1.0).value
        assert pattern.match(value)


def test_title_pattern_with_max_length(table):
    title = {"type": "string", "pattern": r"^\S+( \S+){0,5}$", "maxLength": 40}
    for seed in range(15):
        value = decode(table, title, Noise(table, seed), temperature=1.0, generator=seeded(seed)).value
        assert re.fullmatch(title["pattern"], value) and len(value) <= 40


def test_numbers_stay_in_bounds(table):
    for seed in range(10):
        value = decode(table, {"type": "integer", "minimum": -50, "maximum": 12345}, Noise(table, seed)).value
        assert isinstance(value, int) and -50 <= value <= 12345
        value = decode(
            table, {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, Noise(table, seed)
        ).value
        assert 0 < value < 1


def test_array_lengths(table):
    schema = {"type": "array", "items": {"enum": ["u", "v"]}, "minItems": 2, "maxItems": 4}
    short = decode(table, schema, Steer(table, ('["u", "v"]', 20.0), ('["u", "v", "', 5.0)))
    assert short.value == ["u", "v"]  # closes as soon as allowed
    long = decode(table, schema, Steer(table, ('["v", "v", "v", "v", "v", "v"]', 20.0)))
    assert long.value == ["v", "v", "v", "v"]  # stopped at maxItems
    for seed in range(10):
        assert 2 <= len(decode(table, schema, Noise(table, seed), temperature=1.0).value) <= 4


def test_optional_fields_follow_the_model(table):
    nulls = {"note": None, "level": None, "count": None, "swatch": None}
    assert decode(table, Maybe.model_json_schema(), Steer(table, (json.dumps(nulls), 20.0))).value == nulls
    full = {"note": "ok", "level": "high", "count": 7, "swatch": {"hex": "#00ff00", "weight": "heavy"}}
    assert decode(table, Maybe.model_json_schema(), Steer(table, (json.dumps(full), 20.0))).value == full


def test_string_token_cap_closes_at_the_first_chance(table):
    model = Noise(table, 3, scale=0.1)
    result = decode(table, {"type": "string"}, model, temperature=1.0, generator=seeded(3), max_string_tokens=3)
    # the token that opens the string, 3 inside it, then one that starts with the closing quote
    assert result.sampled <= 5 and table.token_bytes[result.tokens[-1]].startswith(b'"')
    uncapped = decode(
        table,
        {"type": "string"},
        Noise(table, 3, scale=0.1),
        temperature=1.0,
        generator=seeded(3),
        max_string_tokens=None,
        max_tokens=50,
    )
    assert uncapped.sampled > 5
    # the cap waits until the grammar lets the string end
    long = decode(table, {"type": "string", "minLength": 20}, Noise(table, 4), temperature=1.0, max_string_tokens=2)
    assert len(long.value) >= 20


def test_eos_ends_an_open_value_only_where_it_is_complete(table):
    number = {"type": "integer", "minimum": 0, "maximum": 1000}
    stops = decode(table, number, Steer(table, eos=30.0))  # wants to stop at once: after one digit at least
    assert stops.finish_reason == "stop" and 0 <= stops.value <= 1000 and len(stops.text) >= 1
    goes_on = decode(table, number, Steer(table, ("99999", 20.0), eos=-30.0))
    assert goes_on.value == 999  # the grammar ends it: 9999 would be out of range
    assert all(t not in table.eos_ids for t in stops.tokens + goes_on.tokens)


# --- refused schemas ---

UNSUPPORTED = [
    {"not": {"type": "null"}},
    {"if": {"type": "string"}, "then": {"maxLength": 3}},
    {"type": "string", "pattern": "(?=a)b"},
    {"type": "string", "pattern": r"(a)\1"},
    {"type": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": True},
    {"$ref": "#/$defs/Missing"},
    {"$ref": "https://example.com/schema.json"},
    {"type": "integer", "minimum": 5, "maximum": 1},
    {"type": "string", "pattern": "^[a-z]{5}$", "maxLength": 3},
    {"type": "string", "format": "no-such-format"},
]


@pytest.mark.parametrize("schema", UNSUPPORTED, ids=lambda s: json.dumps(s)[:40])
def test_unsupported_schemas_fail_up_front_in_one_line(schema):
    from assay.llm.local.guided import SchemaError, compile_schema

    with pytest.raises(SchemaError) as info:
        compile_schema(schema)
    assert isinstance(info.value, LLMError) and isinstance(info.value, AssayError)
    message = str(info.value)
    assert message.startswith("unsupported JSON Schema: ") and "\n" not in message


def test_the_backend_refuses_before_loading_anything():
    from assay.llm.local import LocalBackend

    backend = LocalBackend("smollm2")
    with pytest.raises(LLMError, match="unsupported JSON Schema.*not"):
        backend.complete_sync(ChatRequest.prompt("x", model="local/smollm2", json_schema={"not": {"type": "null"}}))
    with pytest.raises(LLMError, match="max_string_tokens"):
        backend.complete_sync(
            ChatRequest.prompt("x", json_schema={"type": "string"}, extra={"max_string_tokens": "many"})
        )


def test_schemas_that_are_not_json_objects_are_refused():
    from assay.llm.local.guided import SchemaError, compile_schema

    with pytest.raises(SchemaError, match="must be an object"):
        compile_schema(["not", "a", "schema"])
    with pytest.raises(SchemaError, match="not a JSON Schema"):
        compile_schema({"type": "string", "default": {1, 2}})  # (a set is not JSON)


# --- the package ---


def test_the_package_exports_and_imports_only_downward():
    import ast
    from pathlib import Path

    import assay.llm.local as local

    for name in ("LocalBackend", "THREADS_ENV", "hf_directory", "load_hf_directory", "quiet_transformers"):
        assert hasattr(local, name), name
    for name in ("load_model", "resolve", "gguf_path", "prompt_ids", "load_tokenizer", "dequantised_dir"):
        assert hasattr(local, name), name
    allowed = ("assay.errors", "assay.io", "assay.rng", "assay.progress", "assay.sampling", "assay.config")
    for path in Path(local.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("assay.") or name == "assay":
                    assert name.startswith("assay.llm") or name in allowed, f"{path.name} imports {name}"
