"""Quality measures of synthetic data (assay.synth.quality, `assay synth inspect`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assay.synth.quality import (
    audio_auroc,
    description_auroc,
    has_loop,
    inspect,
    relevance_auroc,
    repeated_ngram_share,
    tag_kind,
    tag_measures,
    valid_candidates,
)
from tests.conftest import one_error, run_cli

PAYLOAD = json.loads((Path(__file__).parents[1] / "music" / "data" / "payload_valid.json").read_text())
# real passages (KJV, Shakespeare) and one-sentence vibes written for each
TEXTS = {
    "kjv/Genesis 1": "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
    "and darkness was upon the face of the deep. And God said, Let there be light: and there was light.",
    "kjv/Psalms 23": "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he "
    "leadeth me beside the still waters. He restoreth my soul.",
    "shakespeare/Macbeth 1.1": "When shall we three meet again In thunder, lightning, or in rain? When the "
    "hurlyburly's done, When the battle's lost and won. Fair is foul, and foul is fair: Hover through the fog "
    "and filthy air.",
    "shakespeare/Tempest 1.1": "Boatswain! Here, master: what cheer? Good, speak to the mariners: fall to't, "
    "yarely, or we run ourselves aground: bestir, bestir! Heigh, my hearts! cheerly, my hearts! Take in the topsail.",
}
GOOD = {
    "kjv/Genesis 1": "Light breaks over a dark formless void at the first dawn of creation.",
    "kjv/Psalms 23": "A gentle shepherd leads his flock to green pastures beside still waters.",
    "shakespeare/Macbeth 1.1": "Three witches meet in thunder, rain and fog on a battlefield heath.",
    "shakespeare/Tempest 1.1": "Sailors shout over a storm as their ship is driven toward the rocks.",
}


def test_the_loop_detector():
    assert has_loop("The scene is set in a scene of a story of a story of a story of a story")
    assert has_loop("dark dark dark dark night")
    assert not has_loop("very very very good")  # one word needs four in a row
    assert not has_loop("a calm night, a calm sea, a calm mind")  # repeated, but not back to back
    assert repeated_ngram_share("of a story of a story of a story") > 0.5 > repeated_ngram_share("calm dark sea") == 0


def test_tags_are_told_apart():
    assert [tag_kind(t) for t in ("tags", "description", "tag_3", "Title", "type", "")] == ["schema"] * 6
    assert [tag_kind(t) for t in ("melancholy", "Soft-light", "stormy sea", "xqzt")] == [
        "mood",
        "mood",
        "word",
        "other",
    ]
    m = tag_measures([["tags", "melancholy"], ["description", "stormy", "harbour lights"]])
    assert m["tags"] == 5 and m["schema_or_placeholder"] == 0.4 and m["mood_vocabulary"] == 0.4
    assert m["vocabulary_or_word"] == 0.6


def test_relevance_separates_vibes_about_their_text_from_empty_ones():
    keys = list(TEXTS)
    good = relevance_auroc([GOOD[k] for k in keys], [TEXTS[k] for k in keys], keys)
    empty = relevance_auroc(["The mood and texture of the scene"] * 4, [TEXTS[k] for k in keys], keys)
    assert good == 1.0 and empty < 0.75
    assert relevance_auroc(["x"], ["y"], ["one"]) is None  # nothing to shuffle with


def config(tempo: str, brightness: str, density: int) -> dict:
    out = json.loads(json.dumps(PAYLOAD))
    out["config"] |= {"tempo": tempo, "brightness": brightness, "density": density}
    return out


def test_audio_scorer_auroc_renders_each_config_and_compares_with_every_other_row():
    from assay.synth.scorers.audio import AudioScorer

    vibes = ["a slow, dark, quiet and lonely winter night", "a fast, bright, busy festival full of energy"] * 2
    configs = [config("very_slow", "very_dark", 2), config("very_fast", "very_bright", 6)] * 2
    keys = ["a", "b", "c", "d"]
    rows = [
        {"vibe_original": v, "dataset": "d", "id_in_dataset": k, "config_payload": p}
        for v, k, p in zip(vibes, keys, configs, strict=True)
    ]
    described = [[AudioScorer().describe(p)[0]] for p in configs]
    assert audio_auroc(rows) == description_auroc(vibes, described, keys)
    assert 0 <= audio_auroc(rows) <= 1
    assert audio_auroc(rows[:1]) is None  # nothing to shuffle with


def test_audio_auroc_uses_every_valid_candidate_and_the_stored_descriptions():
    # a scored row: two candidates, the second invalid; the audio scorer's description stored for the first
    row = {
        "vibe_original": "a quiet night",
        "dataset": "d",
        "id_in_dataset": "1",
        "config_candidates": [config("slow", "dark", 2), {"broken": True}],
        "scores": {"format_valid": [1, 1], "schema_valid": [1, 0], "palette_valid": [1, 0]},
        "candidate_scores": [{"audio": {"description": "a quiet night"}}, None],
    }
    assert valid_candidates(row) == [row["config_candidates"][0]]
    other = row | {
        "vibe_original": "festival drums",
        "id_in_dataset": "2",
        "candidate_scores": [{"audio": {"description": "festival drums"}}, None],
    }
    # the stored descriptions are used as they are (no rendering): each matches its own vibe
    assert audio_auroc([row, other]) == 1.0
    swapped = [
        row | {"candidate_scores": other["candidate_scores"]},
        other | {"candidate_scores": row["candidate_scores"]},
    ]
    assert audio_auroc(swapped) == 0.0


@pytest.fixture()
def folders(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    for dataset in ("kjv", "shakespeare"):
        rows = [
            {"row_id": k, "dataset": dataset, "id_in_dataset": k.split("/", 1)[1], "text": t}
            for k, t in TEXTS.items()
            if k.startswith(dataset)
        ]
        (texts / f"{dataset}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scored = tmp_path / "scored"
    scored.mkdir()
    rows = []
    for i, key in enumerate(TEXTS):
        dataset, ident = key.split("/", 1)
        vibe = GOOD[key] if i % 2 == 0 else "a story of a story of a story of a story"
        tags = ["stormy", "tags"] if i % 2 == 0 else ["description", "tag_1"]
        payload = config(["slow", "fast"][i % 2], "dark", 2 + i)
        row = {"row_id": f"{key}#0:m", "dataset": dataset, "id_in_dataset": ident, "vibe_original": vibe}
        rows.append(row | {"tags_original": tags, "config_payload": payload})
    (scored / "TEST.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return texts, scored


def test_inspect_a_folder(folders):
    texts, scored = folders
    result = inspect(scored, texts, audio=False)
    assert result["rows"] == 4
    assert result["tags"]["schema_or_placeholder"] == 0.75 and result["tags"]["mood_vocabulary"] == 0.25
    assert result["vibes"]["with_loop"] == 0.5
    assert 0 <= result["vibes"]["relevance_auroc"] <= 1
    variety = result["configs"]["distinct_share"]
    assert variety["tempo"] == 0.5 and variety["density"] == 1.0 and variety["root"] == 0.25
    assert "audio_scorer_auroc" not in result


def test_inspect_command(folders, tmp_path, capsys):
    texts, scored = folders
    out = tmp_path / "quality.json"
    code, stdout, err = run_cli(capsys, "synth", "inspect", scored, "--texts", texts, "--no-audio", "-o", out)
    assert code == 0, err
    assert json.loads(stdout) == json.loads(out.read_text())
    code, _, err = run_cli(capsys, "synth", "inspect", tmp_path / "missing")
    assert "no such folder" in one_error(code, err)
    (tmp_path / "nothing").mkdir()
    code, _, err = run_cli(capsys, "synth", "inspect", tmp_path / "nothing")
    assert "no split files" in one_error(code, err)
