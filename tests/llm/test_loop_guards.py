"""Loop guards of the local decoder (assay.sampling.penalize): a CTRL repetition penalty and
no-repeat-n-gram, on plain and guided generation with the real SmolLM2-135M."""

from __future__ import annotations

import json

import pytest
import torch

from assay.llm.local import LocalBackend
from assay.llm.local.guided import compile_schema
from assay.llm.types import ChatRequest, LLMError
from assay.sampling import penalize
from assay.synth.quality import repeated_ngram_share
from tests.llm.conftest import needs_smollm2


def test_penalty_and_ngram_ban_on_scores():
    scores = torch.tensor([2.0, -1.0, 0.5, 3.0, 1.0])
    out = penalize(scores, history=[0, 1], repetition_penalty=2.0)
    assert out.tolist() == [1.0, -2.0, 0.5, 3.0, 1.0]  # seen: positive halved, negative doubled
    # history 4 3 2 4 3: the 3-gram "4 3 2" was seen, so after "4 3" token 2 is banned
    out = penalize(scores, history=[4, 3, 2, 4, 3], no_repeat_ngram=3)
    assert out[2] == float("-inf") and torch.isfinite(out[[0, 1, 3, 4]]).all()
    # over allowed ids only (guided decoding): the same ban, indexed by position
    out = penalize(
        torch.tensor([0.1, 0.2]), history=[4, 3, 2, 4, 3], no_repeat_ngram=3, candidates=torch.tensor([2, 7])
    )
    assert out[0] == float("-inf") and out[1] == pytest.approx(0.2)
    # never every token: a ban that would leave nothing is dropped
    out = penalize(torch.tensor([0.1]), history=[4, 3, 2, 4, 3], no_repeat_ngram=3, candidates=torch.tensor([2]))
    assert torch.isfinite(out).all()
    assert penalize(scores, history=[]) is scores and penalize(scores, [1, 2]) is scores  # off: untouched


@pytest.fixture(scope="module")
def backend():
    return LocalBackend("smollm2", threads=1)


def token_trigrams_repeat(backend, text: str) -> bool:
    ids = backend.load().tokenizer.encode(text, add_special_tokens=False)
    grams = [tuple(ids[i : i + 3]) for i in range(len(ids) - 2)]
    return len(grams) != len(set(grams))


@needs_smollm2
def test_guards_cut_repetition_of_greedy_text(backend):
    prompt = "Describe the mood of a quiet harbour at night in a long paragraph."
    ask = dict(model="local/smollm2", temperature=0.0, max_tokens=120, seed=1)
    plain = backend.complete_sync(ChatRequest.prompt(prompt, **ask)).text
    guards = {"repetition_penalty": 1.3, "no_repeat_ngram_size": 3}
    guarded = backend.complete_sync(ChatRequest.prompt(prompt, **ask, extra=guards)).text
    assert repeated_ngram_share(plain) > 0.05 > repeated_ngram_share(guarded)
    assert token_trigrams_repeat(backend, plain) and not token_trigrams_repeat(backend, guarded)
    with pytest.raises(LLMError, match="repetition_penalty"):
        backend.complete_sync(ChatRequest.prompt(prompt, **ask, extra={"repetition_penalty": 0.5}))


@needs_smollm2
def test_guards_under_guided_decoding_keep_the_json_valid(backend):
    schema = {
        "type": "object",
        "properties": {"mood": {"type": "string"}, "words": {"type": "array", "items": {"type": "string"}}},
        "required": ["mood", "words"],
        "additionalProperties": False,
    }
    compile_schema(schema)  # the schema is one llguidance accepts
    ask = dict(model="local/smollm2", temperature=0.0, max_tokens=80, seed=1, json_schema=schema)
    prompt = "Give the mood of a stormy night and ten words for it, as JSON."
    guarded = backend.complete_sync(
        ChatRequest.prompt(prompt, **ask, extra={"repetition_penalty": 1.3, "no_repeat_ngram_size": 2})
    )
    value = json.loads(guarded.text)  # still schema-valid JSON
    assert isinstance(value["mood"], str) and isinstance(value["words"], list)
    words = [w.lower() for w in value["words"]]
    assert len(words) == len(set(words))  # no word twice: the strings do not repeat a 2-gram of tokens


def test_measured_defaults_guard_guided_answers_only_and_settings_override_them():
    from assay.llm.settings import LLMSettings, loop_guards

    default = LLMSettings(model="local/smollm2")
    assert loop_guards(default, guided=True) == (1.3, 3)  # JSON strings: chosen by issue 23's measures
    assert loop_guards(default, guided=False) == (1.0, 0)  # free text: off
    off = LLMSettings(model="local/smollm2", repetition_penalty=1.0, no_repeat_ngram=0)
    assert loop_guards(off, guided=True) == (1.0, 0)
    assert loop_guards(LLMSettings(model="local/smollm2", no_repeat_ngram=4), guided=False) == (1.0, 4)
