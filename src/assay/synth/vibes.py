"""`assay synth vibes`: per text, an LLM extracts the scene's (and main characters') "vibe" at
five levels of detail; then noise, deduplication on vibe embeddings, and splits.

1. Extraction (resumable, via the pipeline runner): one structured LLM call per text, written to
   `OUT/_progress.jsonl` as soon as it is done.
2. Rows: one per (vibe, level) -- `vibe_scope` scene or character -- with a typo'd copy for about
   `error_rate` of them (`vibe_noisy`, `tags_noisy`; deterministic, see `noise.py`).
3. Dedupe on the *vibe* text (MiniLM cosine >= `dedupe_threshold`, greedy, in row-id order).
4. Splits by source text, so no text has vibes on both sides of a split, chosen eval-first:
   TEST (15% of texts, random with the seed), SFT-Val (5%), GRPO (25%, farthest-point sampling
   on the texts' mean vibe embeddings: the most diverse texts), SFT-Train (the rest).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from assay.config import Section
from assay.errors import DataError
from assay.io import JSONL_MAX, atomic_write_text, check_size, read_jsonl, writing
from assay.llm.types import ChatRequest
from assay.pipeline.step import Job, Step, run_step
from assay.synth.profiles import Profile, resolve, vibe_messages
from assay.synth.schema import LEVELS, extraction_model

SPLITS = ("TEST", "SFT-Val", "GRPO", "SFT-Train")  # the order they are chosen (eval first)
PROGRESS = "_progress.jsonl"


def tag_vocabulary(config: VibesConfig) -> list[str] | None:
    """The words tags are chosen from under guided decoding (None: free tags): the shipped
    mood/texture list (`moods`) or a file of one word per line, plus `extra_tags`."""
    if config.tag_vocabulary == "free":
        return None
    from assay.synth.quality import mood_words, read_words

    if config.tag_vocabulary == "moods":
        words = set(mood_words())
    else:
        path = Path(config.tag_vocabulary)
        if not path.is_file():
            raise DataError(f"vibes.tag_vocabulary: {path} is not a file (use moods, free or a file of words)")
        words = set(read_words(path.read_text(encoding="utf-8")))
    words |= {w.strip().lower() for w in config.extra_tags if w.strip()}
    if not words:
        raise DataError("vibes.tag_vocabulary: the vocabulary is empty")
    return sorted(words)


class VibesConfig(Section):
    seed: int = 42
    error_rate: float = Field(0.15, ge=0, le=1, description="Share of vibe rows that get typo noise.")
    dedupe_threshold: float = Field(0.95, gt=0, le=1, description="Cosine at or above which vibes are duplicates.")
    max_input_words: int = Field(4000, ge=20, description="Texts are truncated to this many words.")
    max_characters: int = Field(2, ge=0, le=6, description="Character vibes asked for per text.")
    levels: list[str] = Field(list(LEVELS), description="Levels that become rows (all five are extracted).")
    prompt_profile: Profile = Field(
        "auto", description="plain (schema in the prompt), small (worked examples), auto: as measured per model."
    )
    tag_vocabulary: str = Field(
        "moods", description="Under guided decoding tags are words of: moods (shipped), a file of words, or free."
    )
    extra_tags: list[str] = Field(default_factory=list, description="Words added to the tag vocabulary.")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(1200, ge=16)
    test_fraction: float = Field(0.15, ge=0, lt=1)
    val_fraction: float = Field(0.05, ge=0, lt=1)
    grpo_fraction: float = Field(0.25, ge=0, lt=1)


SYSTEM = """You read a passage of literature and describe its atmosphere ("vibe") for a composer of \
ambient music. Describe feelings, setting, pace, light, weather, sounds and tension, not the plot.
Give the scene's vibe at five levels of detail: xl (3-4 sentences), lg (2 sentences), m (one \
sentence), sm (a short phrase), xs (1-3 words). Do the same for up to {max_characters} main \
characters (their inner state), and give 1-6 lowercase mood tags.
Answer with one JSON object only, matching this JSON Schema:
{schema}"""


def build_messages(text: str, config: VibesConfig, schema: dict, profile: str = "plain") -> list[dict[str, str]]:
    """The extraction prompt of a resolved profile (`profiles.resolve`; kept apart from the call so it
    can be tested and cached). The small profile shows worked examples instead of the schema."""
    import json

    words = text.split()
    clipped = " ".join(words[: config.max_input_words])
    if profile == "small":
        return vibe_messages(clipped, config.max_characters)
    system = SYSTEM.format(max_characters=config.max_characters, schema=json.dumps(schema, separators=(",", ":")))
    return [{"role": "system", "content": system}, {"role": "user", "content": f"<text>\n{clipped}\n</text>"}]


_OPEN_TAIL = re.compile(r"\s*[\[({<`_][^\])}>]*$")  # an opening bracket never closed, to the end


def tidy(text: str) -> str:
    """One line, without a tail a length bound cut short: an unclosed bracket and what follows it,
    trailing commas, colons, dashes ("the stronghold, the [X" -> "the stronghold, the")."""
    text = " ".join(text.split())
    return _OPEN_TAIL.sub("", text).rstrip(" ,;:-_")


def vibe_rows(progress: list[dict[str, Any]], config: VibesConfig) -> list[dict[str, Any]]:
    """Expand extractions into one row per (vibe, level), with the noisy copies."""
    from assay.synth.noise import noisy_copy

    bad = [lvl for lvl in config.levels if lvl not in LEVELS]
    if bad:
        raise DataError(f"unknown vibe level(s) {bad}: use {', '.join(LEVELS)}")
    rows = []
    for entry in progress:
        ext = entry["extraction"]
        tags = list(dict.fromkeys(t.strip().lower() for t in ext.get("tags", []) if t.strip()))  # unique, in order
        vibes = [("scene", None, ext["scene"])] + [("character", c["name"], c["vibes"]) for c in ext["characters"]]
        for index, (scope, name, levels) in enumerate(vibes):
            for level in config.levels:
                text = tidy(str(levels.get(level, "")))
                if not text:
                    continue
                row_id = f"{entry['row_id']}#{index}:{level}"
                noisy, tags_noisy = noisy_copy(config.seed, row_id, config.error_rate, text, tags)
                rows.append(
                    {
                        "row_id": row_id,
                        "dataset": entry["dataset"],
                        "id_in_dataset": entry["id_in_dataset"],
                        "split": None,
                        "vibe_index": index,
                        "text_page": entry.get("text_page", 0),
                        "vibe_scope": scope,
                        "character_name": name,
                        "vibe_level": level,
                        "vibe_original": text,
                        "vibe_noisy": noisy,
                        "tags_original": tags,
                        "tags_noisy": tags_noisy,
                        "vibe_model": entry["vibe_model"],
                    }
                )
    return sorted(rows, key=lambda r: r["row_id"])


def assign_splits(rows: list[dict[str, Any]], vectors: np.ndarray, config: VibesConfig) -> dict[str, list[str]]:
    """Texts -> splits, eval first: TEST and SFT-Val at random, GRPO by farthest-point sampling on
    the texts' mean vibe embeddings, the rest SFT-Train. Returns split -> text keys."""
    from assay.embeddings import farthest_point_order

    by_text: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_text.setdefault(text_key(row), []).append(i)
    texts = sorted(by_text)
    n = len(texts)
    rng = random.Random(config.seed)
    order = texts[:]
    rng.shuffle(order)
    n_test, n_val = round(config.test_fraction * n), round(config.val_fraction * n)
    n_grpo = round(config.grpo_fraction * n)
    if n >= 4:  # every split gets at least one text when there are enough of them
        n_test, n_val, n_grpo = max(n_test, 1), max(n_val, 1), max(n_grpo, 1)
        n_grpo = min(n_grpo, n - n_test - n_val - 1)
    test, val, rest = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    grpo: list[str] = []
    if rest and n_grpo > 0:
        means = np.stack([vectors[by_text[t]].mean(axis=0) for t in rest])
        means /= np.linalg.norm(means, axis=1, keepdims=True) + 1e-12
        grpo = [rest[i] for i in farthest_point_order(means, n_grpo, start=0)]
    train = [t for t in rest if t not in set(grpo)]
    return {"TEST": test, "SFT-Val": val, "GRPO": grpo, "SFT-Train": train}


def text_key(row: dict[str, Any]) -> str:
    return f"{row['dataset']}/{row['id_in_dataset']}"


def finalize(out_dir: Path, config: VibesConfig, texts: dict[str, str] | None = None) -> dict[str, Any]:
    """Rows from `_progress.jsonl` -> noise -> dedupe -> split files. Returns counts and the quality
    measures of the rows written (`quality.vibe_measures`; relevance when `texts`, 'dataset/id' ->
    source text, is given)."""
    import json

    from assay.embeddings import embed, greedy_dedupe
    from assay.synth.quality import vibe_measures

    progress = list(read_jsonl(out_dir / PROGRESS)) if (out_dir / PROGRESS).exists() else []
    if not progress:
        raise DataError(f"{out_dir / PROGRESS}: no extracted vibes to split")
    rows = vibe_rows(progress, config)
    n_rows = len(rows)
    vectors = embed([r["vibe_original"] for r in rows])
    kept = greedy_dedupe(vectors, config.dedupe_threshold)
    rows, vectors = [rows[i] for i in kept], vectors[kept]
    splits = assign_splits(rows, vectors, config)
    where = {t: name for name, texts in splits.items() for t in texts}
    counts: dict[str, int] = {}
    for name in SPLITS:  # eval splits are written first
        chosen = [r | {"split": name} for r in rows if where[text_key(r)] == name]
        with writing(out_dir / f"{name}.jsonl"):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chosen)
            atomic_write_text(out_dir / f"{name}.jsonl", text)
        counts[name] = len(chosen)
    return {
        "texts": len(progress),
        "vibe_rows": n_rows,
        "after_dedupe": len(rows),
        "noisy_rows": sum(r["vibe_noisy"] != r["vibe_original"] for r in rows),
        "rows_per_split": counts,
        "texts_per_split": {k: len(v) for k, v in splits.items()},
        "quality": vibe_measures(rows, texts),
    }


class VibesStep(Step):
    """Extraction: one structured LLM call per input text, written to `OUT/_progress.jsonl`."""

    name = "vibes"
    not_shipped = ("rows",)  # the input texts go to Ray actors as the rows they process, not twice

    def __init__(self, input_dir: Path, out_dir: Path, config: VibesConfig, llm, runner):
        super().__init__(out_dir, runner, llm)
        self.input_dir, self.config = Path(input_dir), config

    def outputs(self) -> list[Path]:
        return [self.out_dir / PROGRESS]

    def settings(self) -> dict[str, Any]:
        return {"vibes": self.config.model_dump()}

    def setup(self) -> None:
        self.files = sorted(p for p in self.input_dir.glob("*.jsonl") if not p.name.startswith("_"))
        if not self.files:
            raise DataError(f"{self.input_dir}: no input .jsonl files (make them with `assay synth ingest`)")
        self.rows = [row for path in self.files for row in read_jsonl(check_size(path, JSONL_MAX, "a JSONL input"))]
        if not self.rows:
            raise DataError(f"{self.input_dir}: the input files hold no rows ({', '.join(p.name for p in self.files)})")
        for number, row in enumerate(self.rows, 1):
            if not isinstance(row.get("text"), str) or "row_id" not in row:
                raise DataError(
                    f"{self.input_dir}: input row {number} lacks 'text' or 'row_id' (made by `assay synth ingest`?)"
                )
        vocabulary = tag_vocabulary(self.config) if self.llm.guided else None
        self.model_cls = extraction_model(self.config.max_characters, vocabulary)
        self.schema = self.model_cls.model_json_schema()
        self.profile = resolve(self.config.prompt_profile, self.llm.model, "vibes")

    def run_info(self) -> dict[str, Any]:
        return {"inputs": [str(p) for p in self.files], "prompt_profile": self.profile}

    def sends_schema(self) -> bool:
        return True

    def jobs(self) -> list[Job]:
        return [Job(self.rows, self.out_dir / PROGRESS, "vibes")]

    async def process(self, row: dict[str, Any]) -> dict[str, Any]:
        request = ChatRequest(
            model=self.llm.model,
            messages=build_messages(row["text"], self.config, self.schema, self.profile),
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            seed=self.config.seed,
            json_schema=self.schema,
            schema_name="vibes",
        )
        result = await self.client.complete_json(request, self.model_cls)
        if result.value is None:
            raise DataError(f"no valid vibe JSON after {result.attempts} attempt(s): {result.error}")
        return {
            "row_id": row["row_id"],
            "dataset": row["dataset"],
            "id_in_dataset": row["id_in_dataset"],
            "text_page": 0,
            "extraction": result.value.model_dump(),
            "vibe_model": self.llm.model,
        }

    def finish(self, stats) -> dict[str, Any]:
        texts = {text_key(row): row["text"] for row in self.rows}
        return {"run": stats["vibes"].to_dict(), **finalize(self.out_dir, self.config, texts)}


def extract_vibes(input_dir: Path, out_dir: Path, config: VibesConfig, llm_settings, runner_settings) -> dict[str, Any]:
    """Run the extraction over every `*.jsonl` in `input_dir`, then `finalize` (noise, dedupe, splits)."""
    return run_step(VibesStep(input_dir, out_dir, config, llm_settings, runner_settings))
