"""Question-answering datasets for the self-correction pipeline, streamed one `QAItem` at a time.

    stream_qa(dataset, path=None, limit=None) -> Iterator[QAItem]

`dataset` is one of:

    gsm8k     GSM8K JSONL `{"question", "answer"}`; the answer is a worked solution whose last line is
              `#### <number>`. reference_answer = that number (commas and `$` removed, e.g. "1600"),
              solution = the full worked answer. id = `gsm8k-<split>-<line index, from 0>`.
    hotpotqa  HotpotQA records `{"_id", "answer", "question", "supporting_facts", "context", ...}`, either
              JSONL (one record per line, like the shipped sample) or the official `.json` array file
              (streamed record by record). id = `_id`, reference_answer = `answer`, context = the supporting
              paragraphs ("Title: sentences"), blank-line separated, in supporting-fact order.
    boolq     BoolQ JSONL `{"question", "title", "answer": bool, "passage"}`. reference_answer = "yes"/"no",
              context = passage, id = `boolq-<split>-<line index, from 0>`.
    csv       a CSV file whose header has at least `id, question, reference_answer` (optional `context`).
    jsonl     a JSONL file with fields `id`, `question`, `reference_answer` (names configurable).

`path=None` streams the real sample shipped inside assay (GSM8K test: all 1,319 rows; HotpotQA
distractor dev: first 53; BoolQ dev: first 300; sources and licences in `assay/correct/samples/*_SOURCE.md`).
`<split>` is "test"/"dev" for the samples and the file stem for a user file, so `path=".../test.jsonl"`
(GSM8K) or `".../dev.jsonl"` (BoolQ) gives the same ids as the samples. Every user-fixable problem
(missing file, bad JSON line, missing field, non-UTF-8, bad CSV header) is a one-line `DataError`
naming the file and the line (or record). Files are read lazily; only the seen ids are kept (to
reject duplicates).
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assay.errors import ConfigError, DataError
from assay.io import iter_jsonl

DATASETS = ("gsm8k", "hotpotqa", "boolq", "csv", "jsonl")
# The shipped samples: dataset -> (file in assay/correct/samples, split name used in ids).
SAMPLES = {
    "gsm8k": ("gsm8k_test.jsonl", "test"),
    "hotpotqa": ("hotpotqa_dev_sample.jsonl", "dev"),
    "boolq": ("boolq_dev_sample.jsonl", "dev"),
}
CSV_COLUMNS = ("id", "question", "reference_answer")
_GSM8K_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_JSON_CHUNK = 1 << 20  # characters read at a time from a .json array file


@dataclass(frozen=True)
class QAItem:
    """One question. `context` is a passage the prompt may include (BoolQ passage, HotpotQA supporting
    paragraphs), `solution` the dataset's worked solution (GSM8K; never meant for the prompt)."""

    id: str
    question: str
    reference_answer: str
    dataset: str
    context: str | None = None
    solution: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_path(dataset: str) -> Path:
    """The shipped sample file of `dataset` (gsm8k, hotpotqa or boolq)."""
    if dataset not in SAMPLES:
        raise ConfigError(f"no shipped sample for dataset {dataset!r} (have: {', '.join(SAMPLES)})")
    return Path(str(importlib.resources.files("assay.correct") / "samples" / SAMPLES[dataset][0]))


def stream_qa(
    dataset: str,
    path: str | Path | None = None,
    limit: int | None = None,
    *,
    id_field: str = "id",
    question_field: str = "question",
    reference_field: str = "reference_answer",
    context_field: str | None = None,
) -> Iterator[QAItem]:
    """Yield at most `limit` items of `dataset` from `path` (None: the shipped sample). The `*_field`
    names apply to `jsonl` only (`context_field`: also `csv`, default column `context` if present)."""
    if dataset not in DATASETS:
        raise ConfigError(f"unknown QA dataset {dataset!r} (choose from: {', '.join(DATASETS)})")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be a non-negative integer or None, got {limit!r}")
    if path is None:
        if dataset not in SAMPLES:
            raise ConfigError(f"dataset {dataset!r} needs a path to a file (no sample ships for it)")
        file, split = sample_path(dataset), SAMPLES[dataset][1]
    else:
        file = Path(path)
        split = file.stem
        if not file.is_file():
            raise DataError(f"{dataset} file not found: {file}")
    if dataset == "gsm8k":
        items = _gsm8k(file, split)
    elif dataset == "hotpotqa":
        items = _hotpotqa(file)
    elif dataset == "boolq":
        items = _boolq(file, split)
    elif dataset == "csv":
        items = _csv(file, context_field or "context")
    else:
        items = _jsonl(file, id_field, question_field, reference_field, context_field)
    return _unique_limited(items, file, limit)


def _unique_limited(items: Iterator[tuple[str, QAItem]], file: Path, limit: int | None) -> Iterator[QAItem]:
    """Stop after `limit` items; a repeated id is a DataError (traces are keyed by it)."""
    seen: set[str] = set()
    if limit == 0:
        return
    for where, item in items:
        if item.id in seen:
            raise DataError(f"{file} {where}: duplicate id {item.id!r}")
        seen.add(item.id)
        yield item
        if limit is not None and len(seen) >= limit:
            return


def _field(row: Any, key: str, file: Path, where: str, kinds: tuple[type, ...] = (str,)) -> Any:
    """row[key], which must exist, be of one of `kinds` and (for strings) not be blank."""
    if not isinstance(row, dict):
        raise DataError(f"{file} {where} is a JSON {type(row).__name__}, not an object")
    if key not in row:
        raise DataError(f"{file} {where} has no field {key!r} (found: {', '.join(row) or 'nothing'})")
    value = row[key]
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise DataError(f"{file} {where}: field {key!r} must be {names}, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise DataError(f"{file} {where}: field {key!r} is empty")
    return value


def gsm8k_final_answer(answer: str) -> str | None:
    """The number after the last `####` of a GSM8K worked answer, normalised ("1,600" -> "1600",
    "$18" -> "18"); None if there is no `####` or no plain number after it."""
    _, sep, tail = answer.rpartition("####")
    if not sep:
        return None
    text = tail.strip().replace(",", "").replace("$", "").rstrip(".").strip()
    return text if _GSM8K_NUMBER.fullmatch(text) else None


def _gsm8k(file: Path, split: str) -> Iterator[tuple[str, QAItem]]:
    for lineno, row in iter_jsonl(file):
        where = f"line {lineno}"
        question = _field(row, "question", file, where)
        answer = _field(row, "answer", file, where)
        reference = gsm8k_final_answer(answer)
        if reference is None:
            tail = answer.rpartition("####")[2].strip()[:40] if "####" in answer else "no '####' line"
            raise DataError(f"{file} {where}: GSM8K answer has no final number after '####' ({tail!r})")
        item = QAItem(f"gsm8k-{split}-{lineno - 1}", question, reference, "gsm8k", solution=answer)
        yield where, item


def _hotpotqa(file: Path) -> Iterator[tuple[str, QAItem]]:
    records = _iter_json_array(file) if file.suffix == ".json" else iter_jsonl(file)
    unit = "record" if file.suffix == ".json" else "line"
    for number, row in records:
        where = f"{unit} {number}"
        qid = _field(row, "_id", file, where)
        question = _field(row, "question", file, where)
        answer = _field(row, "answer", file, where)
        context = _hotpot_context(row.get("context"), row.get("supporting_facts"))
        yield where, QAItem(qid, question, answer, "hotpotqa", context=context)


def _hotpot_context(context: Any, facts: Any) -> str | None:
    """The supporting paragraphs as "Title: sentences" joined by blank lines (None if absent/malformed:
    the context is optional for the pipeline, so an odd shape is not worth failing a run over)."""
    if not isinstance(context, list) or not isinstance(facts, list):
        return None
    paragraphs: dict[str, str] = {}
    for entry in context:
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list):
            paragraphs[str(entry[0])] = "".join(str(s) for s in entry[1]).strip()
    titles = dict.fromkeys(f[0] for f in facts if isinstance(f, list) and f)  # ordered, unique
    parts = [f"{title}: {paragraphs[title]}" for title in titles if title in paragraphs]
    return "\n\n".join(parts) or None


def _iter_json_array(file: Path) -> Iterator[tuple[int, Any]]:
    """(record number from 1, value) for each element of a top-level JSON array, streamed in chunks,
    so the 46 MB official HotpotQA dev file is never held whole."""
    decoder = json.JSONDecoder()
    try:
        with file.open(encoding="utf-8") as f:
            buf, eof, number = f.read(_JSON_CHUNK), False, 0
            pos = len(buf) - len(buf.lstrip())
            if buf[pos : pos + 1] != "[":
                raise DataError(f"{file} is not a JSON array of records (expected '[' at the start)")
            pos += 1
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n,":
                    pos += 1
                if pos < len(buf) and buf[pos] == "]":
                    return
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    if eof:
                        if not buf[pos:].strip():
                            raise DataError(f"{file} ends before its closing ']' (after record {number})") from None
                        raise DataError(f"{file} record {number + 1} is truncated or malformed ({exc.msg})") from None
                    chunk = f.read(_JSON_CHUNK)
                    buf, pos, eof = buf[pos:] + chunk, 0, not chunk
                    continue
                number += 1
                yield number, value
                buf, pos = buf[end:], 0
    except UnicodeDecodeError as exc:
        raise DataError(f"{file} is not UTF-8 text ({exc.reason})") from None


def _boolq(file: Path, split: str) -> Iterator[tuple[str, QAItem]]:
    for lineno, row in iter_jsonl(file):
        where = f"line {lineno}"
        question = _field(row, "question", file, where)
        answer = _field(row, "answer", file, where, (bool,))
        passage = row.get("passage") if isinstance(row.get("passage"), str) else None
        item = QAItem(f"boolq-{split}-{lineno - 1}", question, "yes" if answer else "no", "boolq", context=passage)
        yield where, item


def _csv(file: Path, context_column: str) -> Iterator[tuple[str, QAItem]]:
    try:
        with file.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                found = ", ".join(header) if header else "an empty file"
                raise DataError(f"{file}: CSV header lacks column(s) {', '.join(missing)} (found: {found})")
            for row in reader:
                where = f"line {reader.line_num}"
                values = {}
                for column in CSV_COLUMNS:
                    value = row.get(column)
                    if value is None or not value.strip():
                        raise DataError(f"{file} {where}: empty or missing {column!r}")
                    values[column] = value.strip() if column != "question" else value
                context = row.get(context_column) or None
                yield where, QAItem(values["id"], values["question"], values["reference_answer"], "csv", context)
    except UnicodeDecodeError as exc:
        raise DataError(f"{file} is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"{file}: malformed CSV ({exc})") from None


def _jsonl(
    file: Path, id_field: str, question_field: str, reference_field: str, context_field: str | None
) -> Iterator[tuple[str, QAItem]]:
    for lineno, row in iter_jsonl(file):
        where = f"line {lineno}"
        qid = _field(row, id_field, file, where, (str, int))
        question = _field(row, question_field, file, where)
        reference = _field(row, reference_field, file, where, (str, int, float, bool))
        if isinstance(reference, bool):
            reference = "yes" if reference else "no"
        context = row.get(context_field) if context_field else None
        if context is not None and not isinstance(context, str):
            raise DataError(f"{file} {where}: field {context_field!r} must be str, got {type(context).__name__}")
        yield where, QAItem(str(qid).strip(), question, str(reference).strip(), "jsonl", context=context)
