"""Prompt profiles (plain / small with worked examples), the tag vocabulary as an enum under guided
decoding, length bounds per vibe level, the shared few-shot prefix of the local model, and the
loop guards' scope (each string, and an array's items together)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from assay.errors import DataError
from assay.llm.local.guided import StringState
from assay.llm.local.session import PrefixCache
from assay.music import validity
from assay.synth.music_configs import MusicConfigsConfig, build_messages, config_request
from assay.synth.profiles import CONFIG_EXAMPLES, VIBE_EXAMPLES, dumps, resolve
from assay.synth.quality import mood_words
from assay.synth.vibes import VibesConfig, extraction_model, tag_vocabulary
from assay.synth.vibes import build_messages as vibe_messages
from tests.llm.conftest import needs_smollm2


def test_auto_is_what_was_measured_best_per_step_and_model():
    assert resolve("auto", "local/smollm2", "configs") == "small"
    assert resolve("auto", "local/smollm2", "vibes") == "plain"  # its examples were copied (docs/results.md)
    assert resolve("auto", "openai/gpt-4o-mini", "configs") == "plain"
    assert resolve("auto", "local/runs/sft/merged", "configs") == "plain"  # a fine-tune learned the plain prompt
    assert resolve("small", "openai/gpt-4o-mini", "vibes") == "small"
    assert resolve("plain", "local/smollm2", "configs") == "plain"


def test_vibe_examples_are_valid_answers_of_the_guided_schema():
    model = extraction_model(1, tag_vocabulary(VibesConfig()))
    for example in VIBE_EXAMPLES:
        answer = {"scene": example["scene"], "characters": example["characters"][:1], "tags": example["tags"]}
        model.model_validate_json(dumps(answer))


def test_config_examples_pass_every_check_of_the_configs_step():
    for example in CONFIG_EXAMPLES:
        checks = validity(dumps(example["payload"]))
        assert checks["format_valid"] and checks["schema_valid"] and checks["palette_valid"], checks["error"]
    tempos = {e["payload"]["config"]["tempo"] for e in CONFIG_EXAMPLES}
    assert len(tempos) == len(CONFIG_EXAMPLES)  # the examples differ where a vibe should be heard


def test_small_profile_shows_examples_instead_of_the_schema():
    config = VibesConfig(max_characters=0, max_input_words=20)
    schema = extraction_model(0, tag_vocabulary(config)).model_json_schema()
    text = "word " * 50
    small = vibe_messages(text, config, schema, "small")
    assert [m["role"] for m in small] == ["system"] + ["user", "assistant"] * len(VIBE_EXAMPLES) + ["user"]
    assert '"$defs"' not in "".join(m["content"] for m in small) and small[-1]["content"].count("word") == 20
    assert all(json.loads(m["content"])["characters"] == [] for m in small if m["role"] == "assistant")
    plain = vibe_messages(text, config, schema, "plain")
    assert len(plain) == 2 and '"$defs"' in plain[0]["content"]

    configs = MusicConfigsConfig()
    assert len(build_messages("a vibe", "small")) == 2 + 2 * len(CONFIG_EXAMPLES)
    assert "JSON Schema" not in build_messages("a vibe", "small")[0]["content"]
    # guided or free, the prompt is the same (guided and free answers stay comparable)
    free = config_request("calm", "r1", 0, configs, "local/smollm2", guided=False)
    assert free.messages == build_messages("calm", "small") and free.json_schema is None
    assert config_request("calm", "r1", 0, configs, "local/smollm2").messages == build_messages("calm", "small")
    assert config_request("calm", "r1", 0, configs, "openai/x").messages == build_messages("calm", "plain")


def test_tags_are_an_enum_of_the_vocabulary_extendable_by_config(tmp_path):
    vocabulary = tag_vocabulary(VibesConfig(extra_tags=["Seafaring", " "]))
    assert set(mood_words()) < set(vocabulary) and "seafaring" in vocabulary
    model = extraction_model(0, vocabulary)
    schema = json.dumps(model.model_json_schema())
    assert '"enum"' in schema and '"seafaring"' in schema
    levels = {"xl": "x" * 60, "lg": "x" * 30, "m": "x" * 20, "sm": "xxxxxx", "xs": "xxx"}
    model.model_validate({"scene": levels, "characters": [], "tags": ["stormy", "seafaring"]})
    with pytest.raises(ValidationError):
        model.model_validate({"scene": levels, "characters": [], "tags": ["description"]})
    # a file of words replaces the shipped list; free leaves tags free; errors are one line
    words = tmp_path / "words.txt"
    words.write_text("# mine\nBrine\nsquall\n\n")
    assert tag_vocabulary(VibesConfig(tag_vocabulary=str(words))) == ["brine", "squall"]
    assert tag_vocabulary(VibesConfig(tag_vocabulary="free")) is None
    assert '"enum"' not in json.dumps(extraction_model(0, None).model_json_schema())
    with pytest.raises(DataError, match="is not a file"):
        tag_vocabulary(VibesConfig(tag_vocabulary=str(tmp_path / "missing.txt")))


def test_length_bounds_per_level_refuse_empty_and_overlong_vibes():
    model = extraction_model(0, None)
    levels = {"xl": "x" * 60, "lg": "x" * 30, "m": "x" * 20, "sm": "xxxxxx", "xs": "xxx"}
    model.model_validate({"scene": levels, "characters": [], "tags": ["a"]})
    for level, bad in (("m", "Mm."), ("xs", "x" * 31), ("xl", "short")):
        with pytest.raises(ValidationError):
            model.model_validate({"scene": levels | {level: bad}, "characters": [], "tags": ["a"]})
    props = model.model_json_schema()["$defs"]["VibeLevels"]["properties"]
    assert props["m"]["minLength"] == 20 and props["m"]["maxLength"] == 150


def test_string_state_knows_which_array_a_string_belongs_to():
    state = StringState()
    scopes = []
    text = '{"a": "x", "t": ["p", "q"], "o": [{"n": "z"}], "u": ["r"]}'
    for char in text:
        opened = state.opened
        state.feed(char.encode())
        if state.opened != opened:
            scopes.append(state.scope)
    # keys and values of objects: no array; "p" and "q" share one array; "r" is in another
    assert scopes[0] is None and scopes[1] is None  # "a", "x"
    p, q = scopes[3], scopes[4]
    assert p is not None and p == q
    n_key, z = scopes[6], scopes[7]
    assert n_key is None and z is None  # inside an object inside an array
    assert scopes[-1] is not None and scopes[-1] != p


def test_prefix_cache_stores_a_long_shared_prefix_the_second_time():
    cache = PrefixCache(slots=2)
    assert cache.wanted([1, 2, 3], turns=1)  # a system turn alone: at once, as before
    assert not cache.wanted([1, 2, 3, 4, 5], turns=3)  # a history seen once is not stored
    assert cache.wanted([1, 2, 3, 4, 5], turns=3)  # ... the same head again: a shared prefix


@needs_smollm2
@pytest.mark.slow
def test_guided_vibes_of_the_local_model_use_only_vocabulary_tags_and_share_the_examples_prefix():
    from assay.llm.local import LocalBackend, prompt_ids
    from assay.llm.types import ChatRequest

    backend = LocalBackend("smollm2", threads=1)
    config = VibesConfig(max_characters=0, max_input_words=60)
    model = extraction_model(0, tag_vocabulary(config))
    schema = model.model_json_schema()
    texts = [
        "The wind howled over the moor all night, and the shutters banged until dawn.",
        "They feasted in the bright hall with music and wine, and the children danced.",
    ]
    stats = []
    for text in texts + texts[:1]:
        messages = vibe_messages(text, config, schema, "small")
        answer = backend.complete_sync(
            ChatRequest(model="local/smollm2", messages=messages, temperature=0.0, max_tokens=300, json_schema=schema)
        )
        value = model.model_validate_json(answer.text)  # tags validated against the enum
        assert set(value.tags) <= set(mood_words())
        stats.append(dict(backend.last_stats))
    ids, prefix_len = prompt_ids(backend.load().tokenizer, vibe_messages(texts[0], config, schema, "small"))
    assert 0 < len(ids) - prefix_len < 80  # the examples are part of the shared prefix: only the text is not
    assert stats[0]["prefix_hit"] == 0.0 and stats[2]["prefix_hit"] == 1.0  # stored the second time


def test_tidy_drops_a_tail_cut_by_a_length_bound():
    from assay.synth.vibes import tidy

    assert tidy("The enemy's stronghold, the [X") == "The enemy's stronghold, the"
    assert tidy("A room (S") == "A room" and tidy("dusk,  rain ;") == "dusk, rain"
    assert tidy("calm (and quiet) night") == "calm (and quiet) night"
