"""`assay synth benchmark`: config sources side by side on held-out vibes (the TEST split).

Every source makes one config per input row from the row's clean vibe (`benchmark.vibe_field`,
default `vibe_original`):

- `model`: an LLM through the one `LLMClient` (`local/smollm2`, `local/PATH` for any HF model
  directory such as a merged fine-tune, `openai/NAME`, `anthropic/NAME`, any LiteLLM string),
  asked exactly as `assay synth configs` asks (`configs.config_request`: same system prompt, same
  `<vibe>` message, the `configs` section's temperature, max_tokens and seed; one candidate).
  Constrained decoding follows `llm.guided` (`--unconstrained`); `free_models` are always
  decoded without it, so guided and free can stand in one table;
- `dataset`: the configs already in a column of the input rows (e.g. `config_payload`);
- `retrieval`: the config of the nearest vibe in a map (`assay music map`; it must hold no row
  of the input);
- `random`: a uniformly random valid config per row (seeded), the floor.

Specs are `[LABEL=]VALUE` (`base=local/smollm2`, `synthetic=config_payload`): a plain name (letters,
digits, `_ . + -`) before the first `=` is the label, so no model id (`ollama/llama3:8b`,
`ft:gpt-4o-mini:org::id`) is ever cut; the label names the source in the table (default: the value).
Measured per source, on the raw text (the model's answer, or the JSON of a dataset/retrieval/random
config) with the configs step's checks (`music.payload.validity`): format / schema / palette
validity rates and `valid_rate` (all three); the offline audio scorer's mean ± s.e. over valid
configs; the seed's reward mean ± s.e. over all rows (invalid answers get its partial credit);
seconds per config (the source's generation wall time / rows); `success_rate` (valid and scored).
Results: `benchmark.json` and one line per (source, row) in `benchmark_rows.jsonl`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from assay.config import Section
from assay.errors import ConfigError, DataError
from assay.stats import json_number, mean_se
from assay.synth.config import SynthConfig

_LABELLED = re.compile(r"^(?P<label>[A-Za-z0-9_.+-]+)=(?P<value>.+)$")


class BenchmarkConfig(Section):
    input: Path | None = Field(None, description="JSONL of vibe rows, e.g. runs/s/scored/TEST.jsonl.")
    models: list[str] = Field([], description="[LABEL=]MODEL, decoded with llm.guided.")
    free_models: list[str] = Field([], description="[LABEL=]MODEL, always without constrained decoding.")
    dataset_fields: list[str] = Field([], description="[LABEL=]FIELD: configs in a column of the input rows.")
    retrieval: list[str] = Field([], description="[LABEL=]MAP_DIR: nearest-vibe configs of a map.")
    random: bool = Field(False, description="Add uniformly random valid configs (the floor).")
    limit: int | None = Field(None, ge=1, description="Use the first N rows (by row_id).")
    out: Path = Field(Path("runs/synth_benchmark"), description="Folder for benchmark.json and benchmark_rows.jsonl.")
    vibe_field: str = "vibe_original"
    seed: int = Field(0, description="Seed of the random configs.")


class SynthBenchmarkConfig(SynthConfig):
    """The synth config tree plus [benchmark]: one TOML file serves the pipeline and its benchmark
    (`configs` gives the prompt's sampling settings, `score.audio_duration` the rendered seconds)."""

    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig)


@dataclass(frozen=True)
class Source:
    label: str
    kind: Literal["model", "dataset", "retrieval", "random"]
    value: str  # model string, column name or map directory ("" for random)
    guided: bool | None = None  # models only


def split_label(spec: str) -> tuple[str, str | None]:
    """`[LABEL=]VALUE` -> (value, label or None)."""
    match = _LABELLED.match(spec.strip())
    if match:
        return match["value"], match["label"]
    return spec.strip(), None


def build_sources(config: BenchmarkConfig, guided: bool) -> list[Source]:
    """The sources in table order (dataset, random, retrieval, models, free models); labels unique."""
    sources: list[Source] = []
    for spec in config.dataset_fields:
        value, label = split_label(spec)
        sources.append(Source(label or value, "dataset", value))
    if config.random:
        sources.append(Source("random", "random", ""))
    for spec in config.retrieval:
        value, label = split_label(spec)
        sources.append(Source(label or "retrieval", "retrieval", value))
    for spec in config.models:
        value, label = split_label(spec)
        sources.append(Source(label or (value if guided else f"{value} (free)"), "model", value, guided))
    for spec in config.free_models:
        value, label = split_label(spec)
        sources.append(Source(label or f"{value} (free)", "model", value, False))
    if not sources:
        raise ConfigError("nothing to benchmark: give --model, --free-model, --dataset-field, --retrieval or --random")
    empty = [s for s in sources if s.kind != "random" and not s.value]
    if empty:
        raise ConfigError(f"source {empty[0].label!r} has no value")
    labels = [s.label for s in sources]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise ConfigError(f"two sources are labelled {twice[0]!r}: name them with LABEL=VALUE")
    return sources


def load_rows(path: Path | None, vibe_field: str, limit: int | None) -> list[dict[str, Any]]:
    """The input rows sorted by row_id (output files are in completion order), the first `limit`."""
    from assay.io import JSONL_MAX, check_size, read_jsonl

    if path is None:
        raise ConfigError("give --input (a JSONL of vibe rows, e.g. the TEST split)")
    if not Path(path).is_file():
        raise DataError(f"input not found: {path}")
    rows = list(read_jsonl(check_size(path, JSONL_MAX, "a JSONL input")))
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("row_id"), str):
            raise DataError(f"{path} row {number}: no row_id")
        vibe = row.get(vibe_field)
        if not isinstance(vibe, str) or not vibe.strip():
            raise DataError(f"{path} row {row['row_id']}: no vibe in field {vibe_field!r}")
    rows.sort(key=lambda r: r["row_id"])
    rows = rows[:limit] if limit else rows
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


# --- making configs ---------------------------------------------------------------------------


@dataclass
class Made:
    """One source's answer for one row: raw text (None: nothing), generation seconds, extra fields."""

    raw: str | None
    seconds: float
    error: str | None = None
    extra: dict[str, Any] | None = None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def make_dataset(rows: list[dict], field: str) -> list[Made]:
    return [
        Made(_as_text(row.get(field)), 0.0, None if row.get(field) is not None else f"no config in field {field!r}")
        for row in rows
    ]


def make_random(rows: list[dict], seed: int) -> list[Made]:
    import random

    from assay.music import random_payload

    rng = random.Random(seed)
    out = []
    for _ in rows:
        start = time.perf_counter()
        payload = random_payload(rng)
        out.append(Made(json.dumps(payload), time.perf_counter() - start))
    return out


def load_map(path: str, rows: list[dict]):
    from assay.music import RetrievalMap

    retrieval_map = RetrievalMap.load(path)
    ids = {row["row_id"] for row in rows}
    leaked = [e for e in retrieval_map.entries if e.get("split") == "TEST" or e.get("row_id") in ids]
    if leaked:
        raise DataError(f"map {path} holds input rows ({leaked[0]['row_id']}): build it from the other splits")
    return retrieval_map


def make_retrieval(rows: list[dict], retrieval_map, vibe_field: str) -> list[Made]:
    start = time.perf_counter()
    nearest = retrieval_map.suggest_many([row[vibe_field] for row in rows], k=1)
    per_query = (time.perf_counter() - start) / len(rows)
    return [
        Made(
            json.dumps(top[0].entry["config_payload"]),
            per_query,
            extra={"neighbour_row_id": top[0].entry["row_id"], "neighbour_similarity": top[0].similarity},
        )
        for top in nearest
    ]


async def make_model(client, source: Source, rows: list[dict], cfg: SynthBenchmarkConfig, advance) -> list[Made]:
    """One answer per row, all requests in flight at once (the client bounds the concurrency)."""
    import asyncio

    from assay.llm.types import LLMError
    from assay.synth.music_configs import config_request

    async def one(row: dict) -> Made:
        request = config_request(
            row[cfg.benchmark.vibe_field], row["row_id"], 0, cfg.configs, source.value, bool(source.guided)
        )
        start = time.perf_counter()
        try:
            response = await client.complete(request)
        except LLMError as exc:
            return Made(None, time.perf_counter() - start, str(exc))
        finally:
            advance()
        extra = {"finish_reason": response.finish_reason, "cached": response.cached}
        return Made(response.text, response.latency_s, extra=extra)

    return list(await asyncio.gather(*(one(row) for row in rows)))


# --- scoring ----------------------------------------------------------------------------------


class _MemoAudio:
    """The audio scorer with a memo, so the reward reuses the render of the audio score."""

    def __init__(self, scorer):
        self.scorer, self.memo = scorer, {}

    def score(self, vibe: str, payload: dict) -> dict:
        key = (vibe, json.dumps(payload, sort_keys=True))
        if key not in self.memo:
            self.memo[key] = self.scorer.score(vibe, payload)
        return self.memo[key]


def score_answer(vibe: str, raw: str | None, audio_scorer) -> dict[str, Any]:
    """Validity (the configs step's checks on the raw text), audio score of a valid payload, reward."""
    from assay.music import validity
    from assay.synth.scorers.reward import reward

    start = time.perf_counter()
    if raw is None:
        check = {"format_valid": 0, "schema_valid": 0, "palette_valid": 0, "error": None, "payload": None}
    else:
        check = validity(raw)
    valid = bool(check["format_valid"] and check["schema_valid"] and check["palette_valid"])
    memo = _MemoAudio(audio_scorer)
    out: dict[str, Any] = {
        "format_valid": check["format_valid"],
        "schema_valid": check["schema_valid"],
        "palette_valid": check["palette_valid"],
        "valid": valid,
        "error": check["error"],
        "config_payload": check["payload"],
        "audio_score": None,
        "audio_description": None,
    }
    # a payload the renderer or scorer cannot handle is a failure of that source, not of the run
    if valid:
        try:
            result = memo.score(vibe, check["payload"])
            out["audio_score"], out["audio_description"] = float(result["final_score"]), result["description"]
        except Exception as exc:
            out["error"] = f"audio scorer: {' '.join(str(exc).split())[:300]}"
    try:
        out["reward"] = float(reward(vibe, raw or "", audio_scorer=memo)["final_score"])
    except Exception as exc:
        out["reward"] = None
        out["error"] = out["error"] or f"reward: {' '.join(str(exc).split())[:300]}"
    out["success"] = valid and out["audio_score"] is not None
    out["score_s"] = time.perf_counter() - start
    return out


def summarize(source: Source, records: list[dict], wall_s: float) -> dict[str, Any]:
    n = len(records)
    audio = [r["audio_score"] for r in records if r["audio_score"] is not None]
    rewards = [r["reward"] for r in records if r["reward"] is not None]
    audio_mean, audio_se = map(json_number, mean_se(audio))  # None (null) when no config was scored
    reward_mean, reward_se = map(json_number, mean_se(rewards))
    return {
        "kind": source.kind,
        "value": source.value,
        "guided": source.guided,
        "rows": n,
        "format_valid_rate": sum(r["format_valid"] for r in records) / n,
        "schema_valid_rate": sum(r["schema_valid"] for r in records) / n,
        "palette_valid_rate": sum(r["palette_valid"] for r in records) / n,
        "valid_rate": sum(r["valid"] for r in records) / n,
        "audio_mean": audio_mean,
        "audio_se": audio_se,
        "audio_n": len(audio),
        "reward_mean": reward_mean,
        "reward_se": reward_se,
        "seconds_per_config": wall_s / n,
        "success_rate": sum(r["success"] for r in records) / n,
        "request_errors": sum(r["request_error"] is not None for r in records),
    }


# --- the run ----------------------------------------------------------------------------------


def run_benchmark(cfg: SynthBenchmarkConfig, progress: bool = True) -> dict[str, Any]:
    """Benchmark every source on the input rows; writes `benchmark.json` and `benchmark_rows.jsonl`
    into `cfg.benchmark.out` and returns what benchmark.json holds."""
    import asyncio

    from assay.io import atomic_write_json, atomic_write_text, writing
    from assay.llm.client import LLMClient
    from assay.llm.types import LLMError
    from assay.progress import progress_bar
    from assay.synth.scorers.audio import AudioScorer

    b = cfg.benchmark
    sources = build_sources(b, cfg.llm.guided)
    rows = load_rows(b.input, b.vibe_field, b.limit)
    # everything that can fail on input fails now, before any config is made
    maps = {s.label: load_map(s.value, rows) for s in sources if s.kind == "retrieval"}
    for s in sources:
        if s.kind == "dataset" and not any(row.get(s.value) is not None for row in rows):
            raise DataError(f"no input row has a value in field {s.value!r} (source {s.label!r})")
    clients = {  # API keys resolve here
        s.label: LLMClient(cfg.llm.model_copy(update={"model": s.value, "guided": s.guided}))
        for s in sources
        if s.kind == "model"
    }
    scorer = AudioScorer(duration=cfg.score.audio_duration)

    all_records: list[dict] = []
    summary: dict[str, Any] = {}
    try:
        for source in sources:
            start = time.perf_counter()
            if source.kind == "model":
                client = clients.pop(source.label)

                async def generate(client=client, source=source) -> list[Made]:
                    try:
                        with progress_bar(len(rows), f"{source.label}: configs", progress) as advance:
                            return await make_model(client, source, rows, cfg, advance)
                    finally:
                        await client.aclose()

                made = asyncio.run(generate())
                if all(m.error for m in made):
                    raise LLMError(f"{source.label}: every request failed ({made[0].error})")
            elif source.kind == "dataset":
                made = make_dataset(rows, source.value)
            elif source.kind == "retrieval":
                made = make_retrieval(rows, maps[source.label], b.vibe_field)
            else:
                made = make_random(rows, b.seed)
            wall_s = time.perf_counter() - start if source.kind == "model" else sum(m.seconds for m in made)
            records = []
            with progress_bar(len(rows), f"{source.label}: scoring", progress) as advance:
                for row, m in zip(rows, made, strict=True):
                    vibe = row[b.vibe_field]
                    record = {"source": source.label, "kind": source.kind, "row_id": row["row_id"], "vibe": vibe}
                    record |= {"raw": m.raw, "request_error": m.error, "config_gen_s": m.seconds}
                    record |= score_answer(vibe, m.raw, scorer)
                    if m.error:
                        record["error"] = m.error
                    record |= m.extra or {}
                    records.append(record)
                    advance(1)
            summary[source.label] = summarize(source, records, wall_s)
            all_records.extend(records)
    finally:
        for client in clients.values():  # sources never reached
            client.close()

    result = {
        "input": str(b.input),
        "rows": len(rows),
        "vibe_field": b.vibe_field,
        "audio_duration_s": cfg.score.audio_duration,
        "sources": summary,
        "settings": {
            "llm": cfg.llm.public_dict(),
            "configs": cfg.configs.model_dump(mode="json"),
            "benchmark": b.model_dump(mode="json"),
        },
    }
    out = Path(b.out)
    with writing(out / "benchmark_rows.jsonl"):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in all_records)
        atomic_write_text(out / "benchmark_rows.jsonl", text)
    with writing(out / "benchmark.json"):
        atomic_write_json(out / "benchmark.json", result)
    return result


def _pm(mean: float | None, se: float | None) -> str:
    return "-" if mean is None else f"{mean:.3f} ± {se:.3f}"


def results_table(result: dict[str, Any]):
    """The rich table of a benchmark result (what benchmark.json holds)."""
    from rich.table import Table

    table = Table(title=f"synth benchmark: {result['rows']} vibes of {result['input']}")
    for col in ("source", "rows", "format", "schema", "palette", "audio", "reward", "s/config", "success"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for label, s in result["sources"].items():
        table.add_row(
            label,
            str(s["rows"]),
            f"{s['format_valid_rate']:.0%}",
            f"{s['schema_valid_rate']:.0%}",
            f"{s['palette_valid_rate']:.0%}",
            _pm(s["audio_mean"], s["audio_se"]),
            _pm(s["reward_mean"], s["reward_se"]),
            f"{s['seconds_per_config']:.2f}",
            f"{s['success_rate']:.0%}",
        )
    return table
