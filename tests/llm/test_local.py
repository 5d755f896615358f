"""The local LLM backend on the real SmolLM2-135M model (no network): plain and guided generation.

The model loads once per test session (from the GGUF, ~15-25 s on 2 cores, since the session's
ASSAY_CACHE_DIR starts empty; the dequantised copy it writes is then checked by loading it back).
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field

from assay.llm.local import LocalBackend, dequantised_dir, gguf_path, load_hf_directory, prompt_ids
from assay.llm.local.session import KVSession
from assay.llm.types import ChatRequest, LLMError
from tests.llm.conftest import needs_smollm2

pytestmark = needs_smollm2  # (a skip outside CI, a failure under CI=true)


@pytest.fixture(scope="module")
def backend():
    backend = LocalBackend("smollm2")
    started = time.perf_counter()
    lm = backend.load()
    print(f"\nlocal model: loaded from {lm.source} in {time.perf_counter() - started:.1f} s")
    return backend


def ask(text: str, system: str | None = None, **params) -> ChatRequest:
    return ChatRequest.prompt(text, system=system, model="local/smollm2", **params)


# --- schemas ----------------------------------------------------------------------------------


class Sketch(BaseModel):
    """Small: enums, ints, bools, strings, an array."""

    model_config = ConfigDict(extra="forbid")
    mood: Literal["happy", "sad", "angry", "calm"]
    tempo_bpm: int = Field(ge=40, le=220)
    bars: Literal[4, 8, 16]
    minor: bool
    title: str = Field(min_length=1, max_length=40)
    instruments: list[Literal["piano", "guitar", "drums", "violin", "synth"]] = Field(min_length=1, max_length=3)


class Colour(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hex: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    weight: Literal["xs", "sm", "md", "lg", "xl"]


class Palette(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colours: list[Colour] = Field(min_length=5, max_length=5)


class Scene(BaseModel):
    """Nested, with $defs."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=30)
    palette: Palette
    mood: Literal["warm", "cold", "neutral"]


class HexOnly(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colours: list[Colour] = Field(min_length=4, max_length=4)


class Maybe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nickname: str | None = None
    level: Literal["low", "high"] | None = None
    count: int | None = Field(default=None, ge=0, le=100)
    colour: Colour | None = None


Level = Literal["none", "low", "medium", "high", "max"]
Speed = Literal["very_slow", "slow", "medium", "fast", "very_fast"]


class Config(BaseModel):
    """34 enum-like fields (a music config)."""

    model_config = ConfigDict(extra="forbid")
    tempo: Speed
    root: Literal["c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b"]
    mode: Literal["major", "minor", "dorian", "mixolydian"]
    brightness: Literal["very_dark", "dark", "medium", "bright", "very_bright"]
    space: Literal["dry", "small", "medium", "large", "vast"]
    density: Literal[2, 3, 4, 5, 6]
    bass: Literal["drone", "sustained", "pulsing", "walking", "octave"]
    pad: Literal["warm", "dark", "cinematic", "thin", "airy"]
    melody: Literal["rising", "falling", "minimal", "ornate", "arpeggio", "call_response"]
    rhythm: Literal["none", "minimal", "heartbeat", "four_on_floor", "hats", "kit", "brush"]
    texture: Literal["none", "shimmer", "vinyl", "breath", "noise", "crystal"]
    accent: Literal["none", "bells", "pluck", "chime", "blip", "wind", "piano"]
    motion: Speed
    attack: Literal["soft", "medium", "sharp"]
    stereo: Literal["mono", "narrow", "medium", "wide"]
    sub_bass: bool
    echo: Level
    human: Literal["robotic", "tight", "natural", "loose"]
    grain: Literal["clean", "warm", "gritty"]
    engine: Literal["pattern", "procedural"]
    phrase_bars: Literal[2, 4, 8]
    melody_density: Level
    syncopation: Level
    swing: Level
    motif_repeat: Literal["rare", "sometimes", "often"]
    step_bias: Literal["step", "balanced", "leap"]
    chromatic: Level
    cadence: Literal["weak", "medium", "strong"]
    low_octave: int = Field(ge=1, le=8)
    high_octave: int = Field(ge=1, le=8)
    tension: Literal["arc", "ramp", "waves"]
    harmony: Literal["pop", "jazz", "cinematic", "ambient"]
    chord_rate: Speed
    extensions: Literal["triads", "sevenths", "lush"]


class Payload(BaseModel):
    """The big one: 34 enum fields, 2 short strings and 3 palettes of 5 {hex, weight}."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=40)
    summary: str = Field(max_length=80)
    config: Config
    palettes: list[Palette] = Field(min_length=3, max_length=3)


def system_for(model: type[BaseModel]) -> str:
    import json

    schema = json.dumps(model.model_json_schema())
    return f"You answer with one JSON object that follows this JSON Schema:\n{schema}"


# --- plain generation -------------------------------------------------------------------------


@pytest.mark.slow
def test_greedy_is_deterministic_and_the_prefix_cache_changes_nothing(backend):
    request = ask("Name three colours.", system="You are a terse assistant.", max_tokens=24)
    first = backend.complete_sync(request)
    stats_first = dict(backend.last_stats)
    second = backend.complete_sync(request)
    assert backend.last_stats["prefix_hit"] == 1.0
    assert first.text == second.text and first.text.strip()
    assert first.usage.completion_tokens <= 24 and first.usage.prompt_tokens > 10
    assert first.finish_reason in ("stop", "length")
    print(f"\nplain greedy: {stats_first['tokens_per_s']:.1f} tokens/s, prefill {stats_first['prefill_s']:.2f} s")


@pytest.mark.slow
def test_seeded_sampling_is_reproducible(backend):
    request = ask("Write one sentence about the sea.", temperature=1.0, top_p=0.95, seed=11, max_tokens=16)
    a = backend.complete_sync(request)
    b = backend.complete_sync(request)
    assert a.text == b.text
    others = {backend.complete_sync(request.replace(seed=s)).text for s in (1, 2, 3)}
    assert len(others | {a.text}) > 1  # a seed does change the sample


@pytest.mark.slow
def test_async_complete_and_errors(backend):
    async def go():
        return await asyncio.gather(
            backend.complete(ask("Hi", max_tokens=4)), backend.complete(ask("Yo", max_tokens=4))
        )

    answers = asyncio.run(go())
    assert all(a.model == "local/smollm2" and a.usage.completion_tokens <= 4 for a in answers)
    with pytest.raises(LLMError, match="unsupported"):
        backend.complete_sync(ask("x", json_schema={"type": "string", "not": {"maxLength": 2}}))
    with pytest.raises(LLMError, match="unknown local model"):
        LocalBackend("no-such-model")


@pytest.mark.slow
def test_session_batches_and_subsets_give_the_same_logits(backend):
    """Forced tokens run in one pass with the next one, and an enum step computes only the allowed
    rows of the output layer: neither may change the numbers the model gives."""
    lm = backend.load()
    ids, prefix_len = prompt_ids(lm.tokenizer, ask("Pick a mood.", system="Answer in JSON.").messages)
    answer = lm.tokenizer.encode('{"mood": "very happy"', add_special_tokens=False)
    batched = KVSession(lm.model, ids, prefix_len, lm.prefixes)
    batched.push(answer)
    together = batched.next_logits()
    stepwise = KVSession(lm.model, ids, prefix_len, lm.prefixes)
    assert stepwise.prefix_hit
    for token in answer:
        stepwise.next_logits()
        stepwise.push([token])
    assert torch.allclose(stepwise.next_logits(), together, atol=1e-3)
    assert (batched.passes, stepwise.passes) == (1, len(answer))
    among = torch.tensor([5, 17, 900, 12000])
    fresh = KVSession(lm.model, ids, prefix_len, lm.prefixes)
    fresh.push(answer)
    assert torch.allclose(fresh.next_logits(among), together[among], atol=1e-4)


@pytest.mark.slow
def test_dequantised_cache_loads_the_same_weights(backend):
    lm = backend.load()
    cached = dequantised_dir(gguf_path())
    assert (cached / "model.safetensors").is_file()
    started = time.perf_counter()
    model, tokenizer = load_hf_directory(cached)
    print(f"\nlocal model: warm load from the dequantised cache in {time.perf_counter() - started:.1f} s")
    probe = torch.tensor([tokenizer.encode("The sky is")])
    with torch.inference_mode():
        assert torch.allclose(model(probe).logits, lm.model(probe).logits, atol=1e-5)


# --- guided decoding --------------------------------------------------------------------------


def guided(backend, model: type[BaseModel], prompt: str, **params):
    request = ask(prompt, system=system_for(model), json_schema=model.model_json_schema(), **params)
    response = backend.complete_sync(request)
    model.model_validate_json(response.text)  # the point: always valid, checked by pydantic
    assert response.finish_reason == "stop"
    return response


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "prompts"),
    [
        (Sketch, ["A rainy afternoon in Paris.", "Victory parade!", "A lullaby for a cat."]),
        (Scene, ["Sunset over a desert.", "A frozen lake at night."]),
        (HexOnly, ["Ocean colours.", "Autumn forest."]),
        (Maybe, ["Describe a quiet person.", "Nothing at all."]),
    ],
    ids=["small", "nested", "hex", "optional"],
)
def test_guided_output_validates(backend, model, prompts):
    for i, prompt in enumerate(prompts):
        response = guided(backend, model, prompt, temperature=0.0 if i == 0 else 0.8, seed=i)
        assert response.usage.completion_tokens > 0


@pytest.mark.slow
def test_guided_big_schema_time_and_budget(backend):
    guided(backend, Payload, "A calm night drive through a neon city.")
    stats = backend.last_stats
    print(
        f"\nguided Payload (34 enums + 2 strings + 3x5 colours): {stats['decode_s']:.2f} s decode, "
        f"{stats['prefill_s']:.2f} s prefill, {stats['completion_tokens']:.0f} tokens "
        f"({stats['forced_tokens']:.0f} forced), {stats['passes']:.0f} passes, grammar {stats['grammar_s']:.3f} s"
    )
    assert stats["forced_tokens"] > stats["sampled_tokens"] > 0 and stats["closing_tokens"] == 0
    assert stats["passes"] <= stats["sampled_tokens"] + 1  # forced tokens ride along with sampled ones
    # a tiny budget still ends in a valid object: the rest is completed without the model
    short = backend.complete_sync(
        ask("Anything.", system=system_for(Payload), json_schema=Payload.model_json_schema(), max_tokens=40)
    )
    stats = backend.last_stats
    assert stats["prefix_hit"] == 1.0
    Payload.model_validate_json(short.text)
    assert short.finish_reason == "length" and stats["closing_tokens"] > 0
    assert short.usage.completion_tokens == stats["sampled_tokens"] + stats["forced_tokens"] + stats["closing_tokens"]
    assert stats["sampled_tokens"] <= 40 and stats["passes"] <= 41
