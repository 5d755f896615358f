"""`assay synth configs`: best-of-N music configs for every vibe row.

Per row, N candidates are sampled (temperature 0.8 by default) from the vibe in `<vibe>...</vibe>`
with a system prompt that carries the instructions and the payload's JSON Schema. Each candidate
is checked on the raw text -- `format_valid` (JSON), `schema_valid` (the payload schema),
`palette_valid` (3 palettes x 5 colours) -- all candidates are kept, and the first valid one is
selected (`best_index`, `config_payload`); `assay synth score` later re-selects by quality. A row
with no valid candidate keeps `config_payload: null` and says why in `config_error`.
With `llm.guided = false` the requests leave the schema out (constrained decoding off: the local
model samples freely, API models get no response_format); the prompt is the same.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from assay.config import Section
from assay.errors import DataError
from assay.io import read_jsonl
from assay.pipeline.step import SplitFilesStep, run_step
from assay.synth.profiles import Profile, config_messages, resolve

if TYPE_CHECKING:
    from assay.llm.types import ChatRequest

SPLIT_FILES = ("TEST", "SFT-Val", "GRPO", "SFT-Train")

SYSTEM = """You are a composer of generative ambient music. Given a vibe (a mood described in words, \
inside <vibe>...</vibe>), design one piece that fits it.
Answer with one JSON object only, with keys in this order: "thinking" (a few sentences on how \
the sound fits the vibe), "title" (1-6 words), "config" (every music field, using only the \
allowed labels), "palettes" (3 colour palettes that fit the vibe, each with 5 distinct colours \
ordered by weight xxl, xl, lg, md, sm).
The JSON Schema of the answer:
{schema}"""


class MusicConfigsConfig(Section):
    num_candidates: int = Field(3, ge=1, le=32, description="Candidates per vibe (best-of-N).")
    temperature: float = Field(0.8, ge=0)
    max_tokens: int = Field(1500, ge=64)
    seed: int = 42
    vibe_field: str = Field("vibe_original", description="Column holding the vibe given to the model.")
    splits: list[str] = Field(list(SPLIT_FILES), description="Split files to process, in this order.")
    prompt_profile: Profile = Field(
        "auto", description="plain (schema in the prompt), small (worked examples), auto: as measured per model."
    )


@lru_cache(maxsize=1)
def system_prompt() -> str:
    """Instructions + the payload's JSON Schema: fixed, so built once per process."""
    from assay.music import payload_json_schema

    return SYSTEM.format(schema=json.dumps(payload_json_schema(), separators=(",", ":")))


@lru_cache(maxsize=1)
def _payload_schema() -> dict[str, Any]:
    from assay.music import payload_json_schema

    return payload_json_schema()


def build_messages(vibe: str, profile: str = "plain") -> list[dict[str, str]]:
    """The config prompt of a resolved profile (`profiles.resolve`). The plain one is also what
    `assay synth train-sft` trains on; the small one shows worked examples instead of the schema."""
    if profile == "small":
        return config_messages(vibe)
    return [{"role": "system", "content": system_prompt()}, {"role": "user", "content": f"<vibe>{vibe}</vibe>"}]


def candidate_seed(seed: int, row_id: str, index: int) -> int:
    """A distinct, stable seed per candidate: different samples, and distinct cache keys."""
    from assay.rng import stable_rng

    return stable_rng(seed, row_id, index).randrange(2**31)


def config_request(
    vibe: str, row_id: str, index: int, config: MusicConfigsConfig, model: str, guided: bool = True
) -> ChatRequest:
    """The request for candidate `index` of a row, in `config.prompt_profile` resolved for `model`.
    guided=False leaves the schema out of the request (it is in the system prompt): the model samples
    freely and only the raw text is validated."""
    from assay.llm.types import ChatRequest

    return ChatRequest(
        model=model,
        messages=build_messages(vibe, resolve(config.prompt_profile, model, "configs")),
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        seed=candidate_seed(config.seed, row_id, index),
        json_schema=_payload_schema() if guided else None,
        schema_name="music_payload",
    )


def select(texts: list[str]) -> dict[str, Any]:
    """Validate candidate texts -> the seed's fields (candidates, scores, best_index, payload, error)."""
    from assay.music import validity

    checks = [validity(text) for text in texts]
    scores = {key: [int(c[key]) for c in checks] for key in ("format_valid", "schema_valid", "palette_valid")}
    valid = [i for i, c in enumerate(checks) if c["format_valid"] and c["schema_valid"] and c["palette_valid"]]
    best = valid[0] if valid else None
    errors = sorted({c["error"] for c in checks if c["error"]})
    return {
        "config_candidates": [c["payload"] for c in checks],
        "config_raw": texts,
        "scores": scores,
        "best_index": best,
        "config_payload": checks[best]["payload"] if best is not None else None,
        "config_error": None if valid else "no valid candidate: " + "; ".join(errors)[:500],
    }


class MusicConfigsStep(SplitFilesStep):
    """Best-of-N candidates for every vibe row of each split file, into the same file name."""

    name = "configs"
    made_by = "assay synth vibes"

    def __init__(self, input_dir: Path, out_dir: Path, config: MusicConfigsConfig, llm, runner):
        super().__init__(input_dir, out_dir, config.splits, runner, llm)
        self.config = config

    def settings(self) -> dict[str, Any]:
        return {"configs": self.config.model_dump()}

    def run_info(self) -> dict[str, Any]:
        return super().run_info() | {"prompt_profile": resolve(self.config.prompt_profile, self.llm.model, "configs")}

    def sends_schema(self) -> bool:
        return self.llm.guided

    async def process(self, row: dict[str, Any]) -> dict[str, Any]:
        import asyncio

        vibe = row.get(self.config.vibe_field)
        if not isinstance(vibe, str) or not vibe.strip():
            raise DataError(f"row {row['row_id']}: no vibe in field {self.config.vibe_field!r}")

        async def one(index: int) -> str:
            request = config_request(vibe, row["row_id"], index, self.config, self.llm.model, self.llm.guided)
            return (await self.client.complete(request)).text

        texts = await asyncio.gather(*(one(i) for i in range(self.config.num_candidates)))
        return row | {"config_model": self.llm.model} | select(list(texts))

    def finish(self, stats) -> dict[str, Any]:
        return {
            "splits": self.split_stats(stats),
            "validity": validity_summary(self.out_dir, self.config.splits),
        }


def generate_configs(
    input_dir: Path, out_dir: Path, config: MusicConfigsConfig, llm_settings: Any, runner_settings: Any
) -> dict[str, Any]:
    """Process each split file of `input_dir` into the same file name in `out_dir`."""
    return run_step(MusicConfigsStep(input_dir, out_dir, config, llm_settings, runner_settings))


def validity_summary(out_dir: Path, splits: list[str]) -> dict[str, float]:
    """Share of candidates format/schema/palette-valid, of rows with a selected config, and the
    selected configs' variety (`quality.config_variety`: distinct values per field / rows)."""
    from assay.synth.quality import config_variety

    payloads = []
    totals = {"candidates": 0, "format_valid": 0, "schema_valid": 0, "palette_valid": 0, "rows": 0, "rows_valid": 0}
    for name in splits:
        path = Path(out_dir) / f"{name}.jsonl"
        if not path.exists():
            continue
        for row in read_jsonl(path):
            totals["rows"] += 1
            totals["rows_valid"] += row.get("config_payload") is not None
            if isinstance(row.get("config_payload"), dict):
                payloads.append(row["config_payload"])
            for key in ("format_valid", "schema_valid", "palette_valid"):
                totals[key] += sum(row["scores"][key])
            totals["candidates"] += len(row["scores"]["format_valid"])
    n = max(totals["candidates"], 1)
    return {
        "candidates": totals["candidates"],
        "format_valid_rate": totals["format_valid"] / n,
        "schema_valid_rate": totals["schema_valid"] / n,
        "palette_valid_rate": totals["palette_valid"] / n,
        "rows": totals["rows"],
        "rows_with_config": totals["rows_valid"],
        "variety": config_variety(payloads).get("mean"),
    }
