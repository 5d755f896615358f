"""The KJV corpus, its book split, the connective finder and its token alignment."""

import numpy as np
import pytest

from assay.data.config import DataConfig
from assay.data.corpus import load_corpus, named_split
from assay.data.kjv import TEST_BOOKS, VAL_BOOKS, load_kjv
from assay.data.tokenizer import build_tokenizer
from assay.data.tokens import split_texts
from assay.errors import DataError
from assay.experiments.connectives.inventory import CLAUSE_INITIAL, LINE_INITIAL, annotate, coverage, load_inventory


@pytest.fixture(scope="module")
def inventory():
    return load_inventory()


@pytest.fixture(scope="module")
def books():
    return {title: (text, verses) for title, text, verses in load_kjv()}


@pytest.fixture(scope="module")
def bpe(books):
    return build_tokenizer("bpe", [books[b][0] for b in ("Genesis", "Exodus", "Matthew", "Acts")], 1024)


def test_kjv_has_every_verse_with_its_reference_and_span(books):
    assert len(books) == 66 and sum(len(v) for _, v in books.values()) == 31_102
    text, verses = books["John"]
    v = next(v for v in verses if (v.chapter, v.verse) == (3, 16))
    assert v.reference == "John 3:16"
    assert text[v.start : v.end].startswith("For God so loved the world")
    assert text[v.end] == "\n" and (v.start == 0 or text[v.start - 1] == "\n")
    assert "[" not in text and "]" not in text  # the translators' supplied words keep their words only
    assert not set(VAL_BOOKS) & set(TEST_BOOKS) and set(VAL_BOOKS) | set(TEST_BOOKS) <= set(books)


def test_named_split_holds_out_whole_books():
    corpus = load_corpus("kjv")
    train, val, test = named_split(corpus, list(VAL_BOOKS), list(TEST_BOOKS))
    assert [d.id for d in val] == list(VAL_BOOKS) and {d.id for d in test} == set(TEST_BOOKS)
    assert len(train) == 66 - 12 and not {d.id for d in train} & (set(VAL_BOOKS) | set(TEST_BOOKS))
    cfg = DataConfig(corpus="kjv", split="named", val_documents=list(VAL_BOOKS), test_documents=list(TEST_BOOKS))
    _, _, texts = split_texts(cfg, test=True)
    john_3_16 = "For God so loved the world"  # John is a test book
    assert john_3_16 in texts["test"] and john_3_16 not in texts["train"] and john_3_16 not in texts["val"]
    with pytest.raises(DataError, match="unknown documents"):
        named_split(corpus, ["Hezekiah"], [])
    with pytest.raises(DataError, match="both validation and test"):
        named_split(corpus, ["Ruth"], ["Ruth"])


def test_finder_catches_capitalised_punctuated_and_line_initial_forms(inventory, bpe):
    text = (
        "For he said, therefore; BUT yet\n"
        "Wherefore, lest he die: so that the LORD\n"
        "the format of butter before it; so\n"
        "Nevertheless afterward to\n wit\n"
    )
    found = [(text[s:e], inventory.forms[f]) for s, e, f in inventory.find(text)]
    assert found == [
        ("For", "for"),
        ("therefore", "therefore"),
        ("BUT", "but"),
        ("yet", "yet"),
        ("Wherefore", "wherefore"),
        ("lest", "lest"),
        ("so that", "so that"),  # the longer form wins
        ("so", "so"),
        ("Nevertheless", "nevertheless"),
        ("afterward", "afterward"),
        ("to\n wit", "to wit"),  # a phrase across whitespace
    ]
    ids, ann = annotate(text, bpe, inventory)
    assert np.array_equal(ids, bpe.encode_array(text))
    flags = {inventory.forms[ann.form[i]]: int(ann.flags[i]) for i in np.flatnonzero(ann.occ >= 0)}
    assert flags["for"] == flags["wherefore"] == flags["nevertheless"] == LINE_INITIAL
    assert flags["therefore"] == flags["but"] == flags["lest"] == CLAUSE_INITIAL
    assert flags["yet"] == 0


@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_token_spans_cover_exactly_the_word_on_real_books(kind, inventory, books, bpe):
    text = books["Ruth"][0] + books["Romans"][0]
    tok = bpe if kind == "bpe" else build_tokenizer("char", [text])
    ids, ann = annotate(text, tok, inventory)
    _, offsets = tok.encode_array_with_offsets(text)
    spans = inventory.find(text)
    assert ann.found.sum() == len(spans) > 500
    assert np.array_equal(ann.found, ann.covered)  # coverage 100%: every occurrence maskable as a word
    for k in np.unique(ann.occ[ann.occ >= 0]):
        positions = np.flatnonzero(ann.occ == k)
        assert np.array_equal(positions, np.arange(positions[0], positions[-1] + 1))  # contiguous
        s, e, f = spans[k]
        got = text[offsets[positions[0], 0] : offsets[positions[-1], 1]]
        assert got.lstrip() == text[s:e] and (ann.form[positions] == f).all()
        # the tokens just outside belong to other words
        for j in (positions[0] - 1, positions[-1] + 1):
            if 0 <= j < len(ids):
                assert ann.occ[j] != k
    rows = coverage(inventory, ann)
    assert sum(r["found"] for r in rows) == sum(r["masked"] for r in rows) == len(spans)
    assert {r["class"] for r in rows} == set(inventory.classes)


def test_inventory_errors_are_one_line(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('[classes]\ncausal = ["for"]\ntemporal = ["for"]\n')
    with pytest.raises(DataError, match="listed in two classes"):
        load_inventory(bad)
    with pytest.raises(DataError, match="not found"):
        load_inventory(tmp_path / "missing.toml")
    bad.write_text("classes = [")
    with pytest.raises(DataError, match="malformed"):
        load_inventory(bad)
