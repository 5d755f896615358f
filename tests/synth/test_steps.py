"""The LLM-free parts of the synth steps: ingest, noise, vibe rows, dedupe and splits."""

import json

import numpy as np
import pytest

from assay.errors import DataError
from assay.synth.ingest import IngestConfig, ingest
from assay.synth.noise import add_typos, is_noisy, noisy_copy, stable_rng
from assay.synth.vibes import LEVELS, VibesConfig, assign_splits, extraction_model, finalize, vibe_rows


def test_ingest_samples_shipped_corpora_reproducibly(tmp_path):
    counts = ingest(IngestConfig(sources=["shakespeare", "kjv"], per_source=4, seed=3), tmp_path / "a")
    assert counts == {"shakespeare": 4, "kjv": 4}
    ingest(IngestConfig(sources=["kjv"], per_source=4, seed=3), tmp_path / "b")
    rows = [json.loads(x) for x in (tmp_path / "a" / "kjv.jsonl").read_text().splitlines()]
    again = [json.loads(x) for x in (tmp_path / "b" / "kjv.jsonl").read_text().splitlines()]
    assert [r["id_in_dataset"] for r in rows] == [r["id_in_dataset"] for r in again]  # per-source sampling
    for row in rows:
        assert set(row) == {"row_id", "dataset", "id_in_dataset", "text", "metadata", "created"}
        assert row["dataset"] == "kjv" and len(row["text"].split()) >= 40
        assert row["row_id"] == f"kjv/{row['id_in_dataset']}"
    scene = json.loads((tmp_path / "a" / "shakespeare.jsonl").read_text().splitlines()[0])
    assert scene["text"].lower().lstrip().startswith("scene") and "work" in scene["metadata"]


def test_ingest_user_folder_and_jsonl(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("word " * 50)
    (folder / "b.txt").write_text("too short")
    src = tmp_path / "mine.jsonl"
    src.write_text(json.dumps({"id": "x1", "body": "w " * 60, "lang": "en"}) + "\n")
    counts = ingest(IngestConfig(sources=[f"folder:{folder}", f"jsonl:{src}:body"], per_source=None), tmp_path / "o")
    assert counts == {"texts": 1, "mine": 1}
    row = json.loads((tmp_path / "o" / "mine.jsonl").read_text())
    assert row["id_in_dataset"] == "x1" and row["metadata"] == {"id": "x1", "lang": "en"}
    with pytest.raises(DataError, match="unknown source"):
        ingest(IngestConfig(sources=["gutenberg"]), tmp_path / "x")
    with pytest.raises(DataError, match="does not exist"):
        ingest(IngestConfig(sources=[f"folder:{tmp_path / 'nope'}"]), tmp_path / "x")


def test_noise_is_deterministic_and_hits_about_the_rate():
    noisy = [is_noisy(42, f"row{i}", 0.15) for i in range(4000)]
    assert 0.13 < sum(noisy) / len(noisy) < 0.17
    assert noisy == [is_noisy(42, f"row{i}", 0.15) for i in range(4000)]
    text = "a slow and misty harbour at dawn, gulls crying far away"
    typo = add_typos(text, stable_rng(1, "x"))
    assert typo != text and typo == add_typos(text, stable_rng(1, "x"))
    # a changed row keeps its length roughly and its words mostly
    assert abs(len(typo) - len(text)) <= 6
    ids = [f"r{i}" for i in range(200)]
    chosen = next(i for i in ids if is_noisy(0, i, 0.15))
    clean = next(i for i in ids if not is_noisy(0, i, 0.15))
    assert noisy_copy(0, clean, 0.15, text, ["calm"]) == (text, ["calm"])
    assert noisy_copy(0, chosen, 0.15, text, ["calm"])[0] != text


def _levels(prefix):
    return {lvl: f"{prefix} {lvl} vibe" for lvl in LEVELS}


def _progress(n):
    moods = [
        "stormy sea at night",
        "quiet monastery garden",
        "royal feast with trumpets",
        "battlefield at dawn",
        "lovers whispering in moonlight",
        "crowded market noise",
        "funeral procession in rain",
        "children laughing in a meadow",
        "ghost on the castle walls",
        "ship leaving harbour",
    ]
    return [
        {
            "row_id": f"d/t{i}",
            "dataset": "d",
            "id_in_dataset": f"t{i}",
            "text_page": 0,
            "extraction": {
                "scene": _levels(moods[i % len(moods)] + f" {i}"),
                "characters": [{"name": "Ann", "vibes": _levels(f"anxious waiting {i}")}] if i % 2 else [],
                "tags": ["dark", "slow"],
            },
            "vibe_model": "test",
        }
        for i in range(n)
    ]


def test_vibe_rows_fields_levels_and_noise():
    rows = vibe_rows(_progress(4), VibesConfig(levels=["m", "xs"], error_rate=0.5))
    assert len(rows) == 4 * 2 + 2 * 2  # scene levels for all, one character on odd texts
    assert {r["vibe_level"] for r in rows} == {"m", "xs"}
    fields = {
        "row_id",
        "dataset",
        "id_in_dataset",
        "split",
        "vibe_index",
        "text_page",
        "vibe_scope",
        "character_name",
        "vibe_level",
        "vibe_original",
        "vibe_noisy",
        "tags_original",
        "tags_noisy",
        "vibe_model",
    }
    assert all(set(r) == fields for r in rows)
    assert {r["vibe_scope"] for r in rows if r["vibe_index"] == 1} == {"character"}
    assert any(r["vibe_noisy"] != r["vibe_original"] for r in rows)
    with pytest.raises(DataError, match="unknown vibe level"):
        vibe_rows(_progress(1), VibesConfig(levels=["huge"]))


def test_splits_are_by_text_eval_first_and_cover_everything():
    cfg = VibesConfig()
    rows = vibe_rows(_progress(20), cfg)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(rows), 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    splits = assign_splits(rows, vecs, cfg)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"TEST": 3, "SFT-Val": 1, "GRPO": 5, "SFT-Train": 11}
    all_texts = [t for v in splits.values() for t in v]
    assert sorted(all_texts) == sorted({f"d/t{i}" for i in range(20)})  # disjoint and complete
    assert assign_splits(rows, vecs, cfg) == splits  # deterministic


def test_finalize_dedupes_on_vibes_and_writes_split_files(tmp_path):
    progress = _progress(10)
    progress[1]["extraction"]["scene"] = dict(progress[0]["extraction"]["scene"])  # exact duplicate vibes
    (tmp_path / "_progress.jsonl").write_text("".join(json.dumps(p) + "\n" for p in progress))
    summary = finalize(tmp_path, VibesConfig(levels=["lg", "xs"]))
    assert summary["after_dedupe"] < summary["vibe_rows"]
    total = 0
    for name in ("TEST", "SFT-Val", "GRPO", "SFT-Train"):
        rows = [json.loads(x) for x in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert all(r["split"] == name for r in rows)
        total += len(rows)
    assert total == summary["after_dedupe"]


def test_extraction_schema_limits_characters():
    model = extraction_model(1)
    levels = {"xl": "x" * 60, "lg": "x" * 30, "m": "x" * 20, "sm": "x" * 6, "xs": "xxx"}  # the length bounds
    ok = {"scene": levels, "characters": [{"name": "A", "vibes": levels}], "tags": ["calm"]}
    model.model_validate(ok)
    with pytest.raises(ValueError):
        model.model_validate(ok | {"characters": ok["characters"] * 2})
    assert model.model_json_schema()["properties"]["characters"]["maxItems"] == 1
