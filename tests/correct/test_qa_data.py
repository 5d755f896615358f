"""QA dataset streamers on the real shipped samples (GSM8K test, HotpotQA dev, BoolQ dev) and on
user CSV/JSONL files, including every one-line DataError path."""

from __future__ import annotations

import importlib.resources
import json
from collections import Counter

import pytest

from assay.correct.qa import QAItem, gsm8k_final_answer, sample_path, stream_qa
from assay.errors import ConfigError, DataError

QA_DIR = importlib.resources.files("assay.correct") / "samples"


def test_shipped_files_and_their_sources_are_present():
    names = {p.name for p in QA_DIR.iterdir()}
    for name in [
        "gsm8k_test.jsonl",
        "gsm8k_LICENSE",
        "gsm8k_SOURCE.md",
        "hotpotqa_dev_sample.jsonl",
        "hotpotqa_SOURCE.md",
        "boolq_dev_sample.jsonl",
        "boolq_SOURCE.md",
    ]:
        assert name in names
    # GSM8K test.jsonl is the unmodified upstream file: its size is the one the SOURCE.md records.
    assert len((QA_DIR / "gsm8k_test.jsonl").read_bytes()) == 749_738
    assert "MIT" in (QA_DIR / "gsm8k_SOURCE.md").read_text()


def test_gsm8k_sample_all_rows_have_numeric_references():
    items = list(stream_qa("gsm8k"))
    assert len(items) == 1319
    assert items[0].id == "gsm8k-test-0" and items[-1].id == "gsm8k-test-1318"
    assert items[0].reference_answer == "18"
    for item in items:
        float(item.reference_answer)  # every reference is a plain number
        assert "," not in item.reference_answer
        assert "####" in item.solution  # the worked answer is kept beside the reference
        assert item.dataset == "gsm8k" and item.context is None
    refs = {i.reference_answer for i in items}
    assert {"-10", "-3", "1450000"} <= refs  # negative and comma-grouped upstream answers survive


def test_hotpotqa_sample_loads_with_ids_and_supporting_context():
    items = list(stream_qa("hotpotqa"))
    assert len(items) == 53
    assert len({i.id for i in items}) == 53
    first = items[0]
    assert first.id == "5a8b57f25542995d1e6f1371"
    assert first.question == "Were Scott Derrickson and Ed Wood of the same nationality?"
    assert first.reference_answer == "yes"
    assert first.context.startswith("Scott Derrickson: Scott Derrickson (born July 16, 1966)")
    assert "\n\nEd Wood: Edward Davis Wood Jr." in first.context
    assert "Woodson, Arkansas" not in first.context  # distractor paragraphs are left out
    assert items[-1].id == "5a77724455429972597f153e"
    assert all(i.context for i in items)


def test_boolq_sample_split_matches_published_counts():
    items = list(stream_qa("boolq"))
    assert len(items) == 300
    assert Counter(i.reference_answer for i in items) == {"yes": 188, "no": 112}
    assert items[0].id == "boolq-dev-0"
    assert items[0].question == "does ethanol take more energy make that produces"
    assert items[0].reference_answer == "no"
    assert items[0].context.startswith("All biomass goes through")


def test_limit_and_to_dict():
    items = list(stream_qa("gsm8k", limit=3))
    assert [i.id for i in items] == ["gsm8k-test-0", "gsm8k-test-1", "gsm8k-test-2"]
    assert list(stream_qa("boolq", limit=0)) == []
    d = items[0].to_dict()
    assert {"id", "question", "reference_answer", "dataset"} <= set(d)
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(ConfigError, match="limit"):
        stream_qa("gsm8k", limit=-1)


def test_user_files_in_the_original_schemas_get_ids_from_their_stem(tmp_path):
    # The first lines of the full upstream files give the same ids as the shipped samples.
    test = tmp_path / "test.jsonl"
    test.write_bytes(b"".join(sample_path("gsm8k").read_bytes().splitlines(keepends=True)[:5]))
    assert [i.id for i in stream_qa("gsm8k", test)] == [f"gsm8k-test-{n}" for n in range(5)]
    dev = tmp_path / "dev.jsonl"
    dev.write_bytes(b"".join(sample_path("boolq").read_bytes().splitlines(keepends=True)[:4]))
    assert [i.id for i in stream_qa("boolq", dev)] == list(i.id for i in stream_qa("boolq", limit=4))


def test_hotpotqa_official_json_array_is_streamed(tmp_path, monkeypatch):
    rows = [json.loads(line) for line in sample_path("hotpotqa").read_text(encoding="utf-8").splitlines()]
    official = tmp_path / "hotpot_dev_distractor_v1.json"
    official.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    monkeypatch.setattr("assay.correct.qa._JSON_CHUNK", 997)  # force many partial reads
    items = list(stream_qa("hotpotqa", official))
    assert items == list(stream_qa("hotpotqa"))
    official.write_text(json.dumps(rows[:3])[:-300], encoding="utf-8")  # truncated like the fork's copy
    with pytest.raises(DataError, match=r"record 3 is truncated or malformed"):
        list(stream_qa("hotpotqa", official))
    official.write_text(json.dumps(rows[:2])[:-1], encoding="utf-8")
    with pytest.raises(DataError, match=r"ends before its closing '\]' \(after record 2\)"):
        list(stream_qa("hotpotqa", official))
    official.write_text('{"_id": 1}', encoding="utf-8")
    with pytest.raises(DataError, match="not a JSON array"):
        list(stream_qa("hotpotqa", official))


def test_csv_loader(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('id,question,reference_answer,context\nq1,"What is 2+2, really?",4,\nq2,Capital?,Paris,France\n')
    items = list(stream_qa("csv", path))
    assert items == [
        QAItem("q1", "What is 2+2, really?", "4", "csv"),
        QAItem("q2", "Capital?", "Paris", "csv", context="France"),
    ]


def test_jsonl_loader_with_custom_field_names(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"qid": 7, "q": "Is it?", "gold": True, "ctx": "passage"}, {"qid": "b", "q": "How many?", "gold": 3}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    items = list(
        stream_qa("jsonl", path, id_field="qid", question_field="q", reference_field="gold", context_field="ctx")
    )
    assert items == [QAItem("7", "Is it?", "yes", "jsonl", "passage"), QAItem("b", "How many?", "3", "jsonl")]
    path.write_text('{"id": "a", "question": "Q?", "reference_answer": "A"}\n')
    assert list(stream_qa("jsonl", path)) == [QAItem("a", "Q?", "A", "jsonl")]


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("dataset", "content", "pattern"),
    [
        ("jsonl", '{"id": "a", "question": "Q?", "reference_answer": "A"}\n{bad json\n', r"line 2 is not valid JSON"),
        ("jsonl", '{"id": "a", "question": "Q?"}\n', r"line 1 has no field 'reference_answer' \(found: id, question\)"),
        ("jsonl", '["a", "b"]\n', r"line 1 is a JSON list, not an object"),
        ("jsonl", '{"id": "a", "question": "  ", "reference_answer": "A"}\n', r"line 1: field 'question' is empty"),
        ("jsonl", '{"id": "a", "question": "Q", "reference_answer": null}\n', r"'reference_answer' must be str/int"),
        ("jsonl", '{"id": 1, "question": "Q", "reference_answer": "A"}\n' * 2, r"line 2: duplicate id '1'"),
        ("gsm8k", '{"question": "Q?", "answer": "no final line"}\n', r"line 1: GSM8K answer has no final number"),
        ("gsm8k", '{"question": "Q?", "answer": "x\\n#### about ten"}\n', r"no final number after '####'"),
        ("gsm8k", '{"question": "Q?"}\n', r"line 1 has no field 'answer'"),
        ("boolq", '{"question": "is it", "answer": "true"}\n', r"line 1: field 'answer' must be bool, got str"),
        ("hotpotqa", '{"question": "Q", "answer": "A"}\n', r"line 1 has no field '_id'"),
        ("csv", "id,question\nq1,Q?\n", r"CSV header lacks column\(s\) reference_answer \(found: id, question\)"),
        ("csv", "", r"lacks column\(s\) id, question, reference_answer \(found: an empty file\)"),
        ("csv", "id,question,reference_answer\nq1,Q?,4\nq2,Q2?\n", r"line 3: empty or missing 'reference_answer'"),
        ("csv", "id,question,reference_answer\nq1,Q?,4\nq1,Q2?,5\n", r"line 3: duplicate id 'q1'"),
    ],
)
def test_bad_input_is_a_one_line_data_error_naming_file_and_line(tmp_path, dataset, content, pattern):
    path = tmp_path / f"data.{'csv' if dataset == 'csv' else 'jsonl'}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=pattern) as exc_info:
        list(stream_qa(dataset, path))
    assert str(path) in _one_line(exc_info)


@pytest.mark.parametrize("dataset", ["csv", "jsonl", "gsm8k"])
def test_non_utf8_and_missing_files(tmp_path, dataset):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"id,question,reference_answer\n1,caf\xe9?,x\n")
    with pytest.raises(DataError, match="not UTF-8") as exc_info:
        list(stream_qa(dataset, path))
    assert str(path) in _one_line(exc_info)
    with pytest.raises(DataError, match="file not found"):
        stream_qa(dataset, tmp_path / "missing.jsonl")


def test_bad_arguments():
    with pytest.raises(ConfigError, match="unknown QA dataset 'squad'"):
        stream_qa("squad")
    with pytest.raises(ConfigError, match="needs a path"):
        stream_qa("csv")
    with pytest.raises(ConfigError, match="needs a path"):
        stream_qa("jsonl")


def test_gsm8k_final_answer():
    assert gsm8k_final_answer("work\n#### 1,600") == "1600"
    assert gsm8k_final_answer("#### $18.") == "18"
    assert gsm8k_final_answer("#### -3") == "-3"
    assert gsm8k_final_answer("no marker 5") is None
    assert gsm8k_final_answer("#### five") is None
