"""The rewriters of `assay judge train` beyond the LM: labelled JSONL rows and an LLM (against the real
local HTTP test server), written as judges' streams with a character tokenizer."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from assay.data.config import DataConfig
from assay.data.corpus import load_corpus
from assay.data.stream import list_shards, load_shard, load_val, read_meta
from assay.data.tokenizer import CharTokenizer
from assay.errors import DataError
from assay.judges.rewrite_jsonl import pack, read_labelled, rewrite_from_jsonl, split_rows
from assay.judges.rewrite_llm import clean_answer, pick_spans, rewrite_with_llm, splice
from assay.judges.rewriters import JsonlRewrite, LLMRewrite, Sources, stream_complete
from assay.llm import LLMSettings
from assay.llm.testserver import Reply, ScriptedServer
from assay.rng import stable_rng

TEXT = load_corpus("tinyshakespeare").documents[0].text[:20_000]
TOKENIZER = CharTokenizer.train([TEXT])  # tiny-shakespeare's characters: no '#', no digits but 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def sources(corpus, tmp_path, llm=None) -> Sources:
    return Sources(tmp_path / "lm", TOKENIZER, DataConfig(corpus=str(corpus)), llm or LLMSettings(), show=False)


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# -- jsonl ------------------------------------------------------------------------------------------
def test_a_labelled_row_gives_exactly_its_token_labels(tmp_path):
    rows = read_labelled(
        write_jsonl(
            tmp_path / "rows.jsonl",
            [
                {"text": "To be, or not", "labels": [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]},
                {"text": "that is #1", "spans": [[5, 7], [8, 10]]},  # '#' and '1' are unknown: [UNK]
                {"text": "the question", "score": 0.25},
            ],
        )
    )
    packed = pack(rows, TOKENIZER, "\n\n")
    assert TOKENIZER.decode(packed.ids) == "To be, or not\n\nthat is \n\nthe question"  # [UNK]s dropped by decode
    ign = -100
    want = [0] * 7 + [1] * 6 + [ign, ign] + [0, 0, 0, 0, 0, 1, 1, 0, ign, ign] + [ign, ign] + [ign] * 12
    assert packed.labels.tolist() == want
    # what a window's score averages: labels where known, a score-only row's score; not separators nor [UNK]
    value = np.where(np.isnan(packed.value), -1, packed.value)
    assert value[-12:].tolist() == [0.25] * 12 and value[13:15].tolist() == [-1, -1] and value[-14] == -1


def test_jsonl_stream_round_trips_the_labels(tmp_path, corpus):
    lines = [line for line in TEXT.split("\n") if len(line) > 20][:60]
    rng = stable_rng("labels")
    rows = []
    for line in lines:
        a = rng.randrange(len(line) - 5)
        rows.append({"text": line, "spans": [[a, a + 5]]})
    path = write_jsonl(tmp_path / "labelled.jsonl", rows)
    cfg = JsonlRewrite(path=str(path), shards=2, shard_size=8, val_shards=4, block_size=24, val_fraction=0.2)
    out = tmp_path / "stream"
    rewrite_from_jsonl(cfg, sources(corpus, tmp_path), out)
    assert stream_complete(out)
    meta = read_meta(out)
    assert meta["mode"] == "rewrite_jsonl" and meta["token_labels"] is True and meta["config"]["stream"]["cls"]
    # the validation windows are the validation rows, in order, joined by unscored separators: their
    # labels are the rows' spans, character for character
    _, val_rows = split_rows(read_labelled(path), 0.2)
    spans = {r["text"]: r["spans"][0] for r in rows}
    text, want = "", []
    for row in val_rows:
        if text:
            text, want = text + "\n\n", want + [-100, -100]
        a, b = spans[row.text]
        text += row.text
        want += [int(a <= i < b) if TOKENIZER.encode(c) != [TOKENIZER.unk_id] else -100 for i, c in enumerate(row.text)]
    val = load_val(out)
    n = len(val["idx"])
    assert n == min(len(text) // 23, 32) and n > 1
    assert torch.equal(val["idx"][:, 0], torch.full((n,), TOKENIZER.cls_id, dtype=torch.int32))
    assert val["idx"][:, 1:].reshape(-1).tolist() == TOKENIZER.encode(text)[: n * 23]
    assert val["token_labels"][:, 1:].reshape(-1).tolist() == want[: n * 23]
    assert (val["token_labels"][:, 0] == -100).all()
    labels = val["token_labels"][:, 1:].float()
    scored = labels != -100
    assert torch.allclose(val["score"], (labels == 1).sum(1) / scored.sum(1))
    # training windows come from the training rows only, at random offsets
    train = load_shard(list_shards(out / "train")[0])
    assert train["idx"].shape == (8, 24) and set(train["token_labels"][:, 1:].unique().tolist()) <= {-100, 0, 1}


def test_score_only_rows_give_no_token_labels(tmp_path, corpus):
    rows = [{"text": line, "score": (i % 5) / 4} for i, line in enumerate(TEXT.split("\n")[:200]) if line]
    path = write_jsonl(tmp_path / "scores.jsonl", rows)
    out = tmp_path / "stream"
    rewrite_from_jsonl(
        JsonlRewrite(path=str(path), shards=1, shard_size=8, block_size=24), sources(corpus, tmp_path), out
    )
    meta = read_meta(out)
    assert meta["token_labels"] is False
    val = load_val(out)
    assert (val["token_labels"] == -100).all() and 0 < val["score"].mean() < 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("not json", "line 2 is not valid JSON"),
        ('["a list"]', "line 2: a row must be a JSON object"),
        ({"labels": [0]}, "line 2 has no string field 'text'"),
        ({"text": "  "}, "line 2: the text is empty"),
        ({"text": "abc"}, "line 2: give exactly one of labels, spans or score (found none)"),
        ({"text": "abc", "score": 0.5, "spans": []}, "(found spans and score)"),
        ({"text": "abc", "labels": [0, 1]}, "line 2: labels must hold one 0/1 per character: 2 items for 3 characters"),
        ({"text": "abc", "labels": [0, 2, 0]}, "line 2: labels[1] is 2"),
        ({"text": "abc", "labels": "011"}, "a str for 3 characters"),
        (
            {"text": "abc", "spans": [[2, 1]]},
            "line 2: spans[0] is [2, 1]: a span is [start, end] with 0 <= start < end <= 3",
        ),
        ({"text": "abc", "spans": [[0, 4]]}, "spans[0] is [0, 4]"),
        ({"text": "abc", "spans": [3]}, "spans[0] is 3"),
        ({"text": "abc", "score": 1.5}, "line 2: score must be a number in [0, 1], not 1.5"),
        ({"text": "abc", "score": True}, "score must be a number in [0, 1], not True"),
    ],
)
def test_bad_rows_are_one_line_errors_naming_the_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine", "score": 0.0}, row, {"text": "ok", "score": 1}])
    with pytest.raises(DataError) as exc:
        read_labelled(path)
    assert message in str(exc.value) and "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_too_few_rows_or_too_little_text(tmp_path, corpus):
    with pytest.raises(DataError, match="at least two are needed"):
        read_labelled(write_jsonl(tmp_path / "one.jsonl", [{"text": "one row", "score": 0.5}]))
    path = write_jsonl(tmp_path / "short.jsonl", [{"text": "short", "score": 0.5}, {"text": "texts", "score": 0}])
    with pytest.raises(DataError, match="fewer than one sample of 23: add text"):
        rewrite_from_jsonl(JsonlRewrite(path=str(path), block_size=24), sources(corpus, tmp_path), tmp_path / "s")


def test_the_split_is_by_text_and_deterministic():
    rows = read_rows = [type("R", (), {"text": f"row {i}"})() for i in range(50)]
    train, val = split_rows(rows, 0.2)
    assert 0 < len(val) < 50 and len(train) + len(val) == 50
    assert [r.text for r in split_rows(list(reversed(read_rows)), 0.2)[1]] == [r.text for r in reversed(val)]


# -- llm --------------------------------------------------------------------------------------------
SPAN = re.compile(r"Passage:\n(.*)\[\[(.*?)\]\](.*)\n\nReplacement for the marked part", re.S)


def rewrite(span: str) -> str:
    """What the test server answers: the span in capitals, then a character the tokenizer lacks."""
    return span.upper() + " #"


def respond(body: dict) -> Reply:
    before, span, after = SPAN.search(body["messages"][-1]["content"]).groups()
    return Reply(content=rewrite(span))


def test_llm_rewrites_are_labelled_exactly_where_they_went(tmp_path, corpus):
    cfg = LLMRewrite(shards=2, shard_size=6, val_shards=1, block_size=48, seed=3)
    with ScriptedServer(responder=respond) as server:
        llm = LLMSettings(model="openai/test", api_base=server.base_url, cache=tmp_path / "llm.sqlite", max_retries=0)
        out = tmp_path / "stream"
        rewrite_with_llm(cfg, sources(corpus, tmp_path, llm), out)
        asked = [SPAN.search(r.body["messages"][-1]["content"]).groups() for r in server.requests]
        assert len(asked) == 3 * 6 and all(r.body["model"] == "test" for r in server.requests)
        # a second stream from the same passages is answered from the cache
        rewrite_with_llm(cfg, sources(corpus, tmp_path, llm), tmp_path / "again")
        assert len(server.requests) == 18
    spans = {before + span + after: (len(before), len(before) + len(span)) for before, span, after in asked}
    width = 47
    samples = [load_shard(p) for p in list_shards(out / "val").values()] + [
        load_shard(p) for p in list_shards(out / "train").values()
    ]
    unk = TOKENIZER.unk_id
    for shard in samples:
        for idx, labels, original, score in zip(
            shard["idx"], shard["token_labels"], shard["original"], shard["score"], strict=True
        ):
            passage = TOKENIZER.decode(original[1:].tolist())
            a, b = spans[passage]
            answer = rewrite(passage[a:b])
            expected = (passage[:a] + answer + passage[b:])[:width]
            assert idx[1:].tolist() == TOKENIZER.encode(expected)
            rewritten = [1] * len(answer)
            want = [0] * a + rewritten + [0] * len(passage)
            want = [-100 if t == unk else w for t, w in zip(TOKENIZER.encode(expected), want, strict=False)]
            assert labels.tolist() == [-100] + want
            if a + len(answer) <= width:
                assert idx[a + len(answer)] == unk  # the '#': [UNK], never scored
            assert score == pytest.approx(want.count(1) / sum(x != -100 for x in want))
    assert read_meta(out)["mode"] == "rewrite_llm" and read_meta(out)["lm"] == str((tmp_path / "lm").resolve())


def test_spans_are_whole_words_and_answers_are_cleaned():
    passage = "Before we proceed any further, hear me speak."
    for seed in range(20):
        for a, b in pick_spans(passage, 2, (0.1, 0.5), stable_rng(seed)):
            assert passage[a:b] == passage[a:b].strip() and (a == 0 or passage[a - 1] == " ")
            assert b == len(passage) or passage[b] == " "
    assert clean_answer('  "hear me not"\nI rewrote it for you.', "hear me speak") == "hear me not"
    assert clean_answer("[[bid me talk]] done", "hear me speak") == "bid me talk"
    assert clean_answer("word " * 30, "two words") == "word word word word word"  # at most 2 x 9 + 8 characters
    text, labels = splice("abc def ghi", [(4, 7)], ["XY"])
    assert text == "abc XY ghi" and labels.tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert splice("abc def", [(4, 7)], ["def"])[1].tolist() == [0] * 7  # unchanged: nothing rewritten
