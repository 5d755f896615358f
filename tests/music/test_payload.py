"""The payload schema: what it accepts, what it rejects (with the field in the message), and the repairs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from assay.errors import AssayError
from assay.music.config import CONFIG_FIELDS, MusicConfigError, MusicConfigPrompt, parse_config
from assay.music.params import ORDINAL_VALUES, render_params
from assay.music.payload import (
    dedupe_palette_hexes,
    format_valid,
    load_music_json,
    palette_valid,
    parse_payload,
    payload_json_schema,
    sanitize_payload,
    schema_hash,
    schema_valid,
    validity,
)

DATA = Path(__file__).parent / "data"
PINNED_SCHEMA_HASH = "96a568ef0398c97673f30eae0fcb8b20b021758b93a53fce4b5d720ecae8d91f"


@pytest.fixture
def payload() -> dict:
    return json.loads((DATA / "payload_valid.json").read_text())


def test_valid_payload_parses(payload):
    parsed = parse_payload(payload)
    assert parsed.title == "Lantern Over Winter Sea"
    assert parsed.config.tempo == "slow" and parsed.config.density == 5 and parsed.config.depth is True
    assert len(parsed.palettes) == 3 and all(len(p.colors) == 5 for p in parsed.palettes)
    assert parse_payload(json.dumps(payload)) == parsed  # JSON text too


def test_config_has_34_fields_in_spec_order():
    assert len(CONFIG_FIELDS) == 34
    assert CONFIG_FIELDS[:6] == ("tempo", "root", "mode", "brightness", "space", "density")
    assert CONFIG_FIELDS[-4:] == ("tension_curve", "harmony_style", "chord_change_bars", "chord_extensions")
    schema = payload_json_schema()
    assert list(schema["properties"]) == ["thinking", "title", "config", "palettes"]
    assert set(schema["required"]) == {"thinking", "title", "config", "palettes"}


def _error(obj) -> str:
    with pytest.raises(MusicConfigError) as info:
        parse_payload(obj)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p["config"].update(tempo="warp"), "config.tempo: 'warp' is not one of very_slow, slow, medium"),
        (lambda p: p["config"].update(root="C"), "config.root: 'C' is not one of c, c#, d"),  # case-sensitive
        (lambda p: p["config"].update(density=7), "config.density: 7 is not one of 2, 3, 4, 5, 6"),
        (lambda p: p["config"].update(density="5"), "config.density: '5' is not one of"),
        (lambda p: p["config"].update(phrase_len_bars=3), "config.phrase_len_bars: 3 is not one of 2, 4, 8"),
        (lambda p: p["config"].update(register_max_oct=9), "config.register_max_oct:"),
        (lambda p: p["config"].pop("bass"), "config.bass: field required"),
        (lambda p: p["config"].update(volume="loud"), "config.volume: unknown field"),
        (lambda p: p.update(extra=1), "extra: unknown field"),
        (lambda p: p.pop("thinking"), "thinking: field required"),
        (lambda p: p.update(thinking="x" * 1001), "thinking:"),
        (lambda p: p.update(title=""), "title:"),
        (lambda p: p.update(title="   "), "title: title is blank"),
        (lambda p: p.update(title="one two three four five six seven"), "title: title has 7 words"),
        (lambda p: p.update(title="x" * 61), "title:"),
        (lambda p: p["palettes"].pop(), "palettes: list should have at least 3 items"),
        (lambda p: p["palettes"].append(copy.deepcopy(p["palettes"][0])), "palettes: list should have at most 3"),
        (lambda p: p["palettes"][1]["colors"].pop(), "palettes.1.colors: list should have at least 5"),
        (
            lambda p: p["palettes"][0]["colors"][2].update(hex="#abc"),
            "palettes.0.colors.2.hex: '#abc' does not match the pattern ^#[0-9a-fA-F]{6}$",
        ),
        (lambda p: p["palettes"][0]["colors"][2].update(weight="huge"), "palettes.0.colors.2.weight: 'huge' is not"),
        (lambda p: p["palettes"][2]["colors"][0].update(alpha=1), "palettes.2.colors.0.alpha: unknown field"),
        (lambda p: p["palettes"][2].update(name="x"), "palettes.2.name: unknown field"),
    ],
)
def test_bad_payloads_name_the_field(payload, mutate, expected):
    mutate(payload)
    assert _error(payload).startswith(expected)


def test_several_errors_are_counted_on_one_line(payload):
    payload["config"].update(tempo="warp", mode="lydian")
    assert _error(payload).endswith("(and 1 more error)")


def test_non_objects_and_bad_json_are_one_line_errors():
    message = str(pytest.raises(MusicConfigError, parse_payload, "[1, 2]").value)
    assert message == "payload: expected a JSON object, got list"
    message = str(pytest.raises(MusicConfigError, parse_payload, '{"title": ').value)
    assert message.startswith("invalid JSON:") and "line 1" in message
    assert issubclass(MusicConfigError, AssayError)


def test_title_word_rules(payload):
    for title in ("Dawn", "  Six words are fine right here  ", "tabs\tand\nnewlines count as spaces"):
        payload["title"] = title
        assert parse_payload(payload).title == title


def test_lax_coercions(payload):
    config = payload["config"]
    config.update(depth="true", register_min_oct="3", density=5.0, phrase_len_bars=8.0)
    parsed = parse_payload(payload).config
    assert parsed.depth is True and parsed.register_min_oct == 3 and parsed.density == 5 and parsed.phrase_len_bars == 8
    config.update(depth=1)
    assert parse_payload(payload).config.depth is True
    config.update(register_min_oct=6, register_max_oct=3)  # min > max is allowed (the synth swaps them)
    params = render_params(parse_payload(payload).config)
    assert (params.register_min_oct, params.register_max_oct) == (3, 6)


def test_colors_resorted_heaviest_first_stably(payload):
    payload["palettes"][0]["colors"] = [
        {"hex": "#000001", "weight": "sm"},
        {"hex": "#000002", "weight": "xxl"},
        {"hex": "#000003", "weight": "md"},
        {"hex": "#000004", "weight": "xxl"},
        {"hex": "#000005", "weight": "xs"},
    ]
    colors = parse_payload(payload).palettes[0].colors
    assert [c.hex for c in colors] == ["#000002", "#000004", "#000003", "#000001", "#000005"]


def test_duplicate_hexes_are_valid_and_dedupe_shifts_them(payload):
    colors = payload["palettes"][0]["colors"]
    for c, h in zip(colors, ["#0A0A0A", "#0a0a0a", "#0A0A0A", "#FFFFFE", "#fffffe"], strict=True):
        c["hex"] = h
    assert schema_valid(payload) == 1
    fixed = dedupe_palette_hexes(payload)
    assert [c["hex"] for c in fixed["palettes"][0]["colors"]] == ["#0A0A0A", "#0d0d0d", "#101010", "#FFFFFE", "#ffffff"]
    assert payload["palettes"][0]["colors"][1]["hex"] == "#0a0a0a"  # input untouched
    model = dedupe_palette_hexes(parse_payload(payload))
    assert [c.hex for c in model.palettes[0].colors][:3] == ["#0A0A0A", "#0d0d0d", "#101010"]


def test_validity_on_raw_text(payload):
    text = json.dumps(payload)
    assert validity(text) == {
        "format_valid": 1,
        "schema_valid": 1,
        "palette_valid": 1,
        "error": None,
        "payload": parse_payload(payload).model_dump(),
    }
    fenced = validity("```json\n" + text + "\n```")
    assert fenced["format_valid"] == fenced["schema_valid"] == 1
    assert validity("not json") | {"error": None} == {
        "format_valid": 0,
        "schema_valid": 0,
        "palette_valid": 0,
        "error": None,
        "payload": None,
    }
    assert validity("[1]")["format_valid"] == 0

    payload["config"]["tempo"] = "warp"  # schema fails, palettes still fine
    out = validity(json.dumps(payload))
    assert (out["format_valid"], out["schema_valid"], out["palette_valid"]) == (1, 0, 1)
    assert out["error"].startswith("config.tempo:") and out["payload"] is None

    payload["palettes"][0]["colors"][0]["hex"] = "blue"
    assert palette_valid(payload) == 0
    assert format_valid('{"a": 1}') == 1 and format_valid("{") == 0


def test_sanitizer(payload):
    payload["title"] = "  one two three four five six seven eight "
    payload["thinking"] = "y" * 1500
    payload["config"].update(
        density=9,
        register_min_oct=0,
        register_max_oct=12,
        phrase_len_bars=5,
        tempo="ludicrous",
        human="sloppy",
        chord_change_bars="sometimes",
        bass="dubstep",  # styles are not repaired
    )
    out = sanitize_payload(payload)
    assert out["title"] == "one two three four five six"
    assert len(out["thinking"]) == 1000
    c = out["config"]
    assert (c["density"], c["register_min_oct"], c["register_max_oct"], c["phrase_len_bars"]) == (6, 1, 8, 4)
    assert (c["tempo"], c["human"], c["chord_change_bars"], c["bass"]) == ("medium", "robotic", "medium", "dubstep")
    assert payload["config"]["density"] == 9  # input untouched
    assert sanitize_payload({"title": "   "})["title"] == "Untitled"
    assert sanitize_payload({"title": "x" * 80})["title"] == "x" * 60
    phrase = [sanitize_payload({"config": {"phrase_len_bars": n}})["config"] for n in (1, 3, 6, 7, 20)]
    snapped = [c["phrase_len_bars"] for c in phrase]
    assert snapped == [2, 2, 4, 8, 8]
    for key, default in [("swing", "none"), ("step_bias", "balanced"), ("motif_repeat_prob", "sometimes")]:
        assert sanitize_payload({"config": {key: "??"}})["config"][key] == default


def test_sanitized_llm_slip_validates(payload):
    payload["config"].update(density=1, phrase_len_bars=16, echo="loads")
    payload["title"] = "a very long title with far too many words"
    assert schema_valid(payload) == 0
    assert schema_valid(sanitize_payload(payload)) == 1


def test_schema_hash_is_stable():
    assert schema_hash() == schema_hash()
    assert len(schema_hash()) == 64
    # Pinned: a change here means the schema the LLM sees changed (update the pin deliberately).
    assert schema_hash() == PINNED_SCHEMA_HASH


def test_bare_config_or_payload(payload):
    config, whole = load_music_json(payload)
    assert whole is not None and whole.config == config
    bare, none = load_music_json(payload["config"])
    assert none is None and bare == config
    message = str(pytest.raises(MusicConfigError, load_music_json, {**payload["config"], "tempo": 3}).value)
    assert message.startswith("config.tempo: 3 is not one of")
    assert parse_config(json.dumps(payload["config"])) == config


def test_synth_params_use_the_label_tables(payload):
    params = render_params(MusicConfigPrompt.model_validate(payload["config"]))
    assert params.tempo == 0.30 and params.bpm == pytest.approx(88.0)
    assert params.space == 0.95 and params.echo == 0.75 and params.human == 0.3
    assert params.chord_change_bars == 2 and params.step_bias == 0.9
    bpms = [55 + 110 * value for value in ORDINAL_VALUES["tempo"].values()]
    assert bpms == pytest.approx([71.5, 88.0, 110.0, 132.0, 154.0])
