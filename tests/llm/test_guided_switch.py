"""The constrained-decoding switch (`llm.guided`): guided requests carry the answer's JSON Schema,
and the local model's answers to them always validate; free requests are the same prompt without
it, so the local model takes its plain sampling path and the raw text is validated afterwards."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from assay.config import load_config
from assay.llm.cache import cache_key
from assay.llm.settings import LLMSettings
from assay.llm.types import ChatRequest
from assay.music.payload import payload_json_schema, validity
from assay.synth.config import SynthConfig
from assay.synth.music_configs import MusicConfigsConfig, config_request
from tests.llm.conftest import needs_smollm2


def test_guided_is_on_by_default_and_a_config_key():
    assert LLMSettings().guided is True
    cfg = load_config(SynthConfig, None, ["llm.guided=false"])
    assert cfg.llm.guided is False and cfg.llm.public_dict()["guided"] is False


def test_free_request_is_the_guided_one_without_the_schema():
    on = config_request("rain at night", "r/1", 0, MusicConfigsConfig(), "local/smollm2", guided=True)
    off = config_request("rain at night", "r/1", 0, MusicConfigsConfig(), "local/smollm2", guided=False)
    assert on.json_schema == payload_json_schema() and off.json_schema is None
    assert on.replace(json_schema=None) == off  # same messages, sampling parameters and seed
    assert cache_key(on, "local") != cache_key(off, "local")  # a free answer never replays a guided one


class Mood(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mood: Literal["calm", "tense", "joyful", "sad"]
    colour: str = Field(pattern=r"^#[0-9a-f]{6}$")


@pytest.fixture(scope="module")
def backend():
    from assay.llm.local import LocalBackend

    return LocalBackend("smollm2")


@pytest.mark.slow
@needs_smollm2
def test_guided_answers_always_validate_on_a_batch(backend):
    prompts = ["A storm at sea.", "Children at play.", "A funeral in the rain."]
    for seed, prompt in enumerate(prompts):
        request = ChatRequest.prompt(
            prompt, model="local/smollm2", json_schema=Mood.model_json_schema(), temperature=1.0, seed=seed
        )
        response = asyncio.run(backend.complete(request))
        Mood.model_validate_json(response.text)  # raises if not valid
        assert backend.last_stats["guided"] == 1.0 and backend.last_stats["sampled_tokens"] > 0


@pytest.mark.slow
@needs_smollm2
def test_free_request_takes_the_plain_sampling_path(backend):
    guided = ChatRequest.prompt("A storm at sea.", model="local/smollm2", json_schema=Mood.model_json_schema(), seed=1)
    free = guided.replace(json_schema=None, max_tokens=12)  # what guided=False sends: the same prompt, no schema
    response = backend.complete_sync(free)
    assert backend.last_stats["guided"] == 0.0 and backend.last_stats["completion_tokens"] <= 13
    check = validity(response.text)  # the raw text, validated like any API answer
    assert check["schema_valid"] == 0 and check["error"]


@pytest.mark.slow
@needs_smollm2
def test_the_configs_request_gets_a_valid_payload(backend):
    """The configs step's own request (its system prompt with the schema, its temperature and
    token budget), answered by SmolLM2 under the guided decoder: valid for the pipeline."""
    request = config_request(
        "Rain on a tin roof at dawn, lonely but hopeful.", "r/1", 0, MusicConfigsConfig(), "local/smollm2"
    )
    response = backend.complete_sync(request)
    check = validity(response.text)
    assert (check["format_valid"], check["schema_valid"], check["palette_valid"]) == (1, 1, 1), check["error"]
    assert response.finish_reason == "stop" and backend.last_stats["closing_tokens"] == 0
