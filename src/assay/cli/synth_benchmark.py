"""`assay synth benchmark`: config sources side by side on the TEST vibes (docs/synth.md#benchmark).

Every option is a key of the `SynthBenchmarkConfig` tree (the synth tree plus [benchmark]): set it
in a TOML file (`-c`), with the flags below, or with `--set key=value` (in that order, last wins).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from assay.cli.llm_options import (
    ApiBaseOpt,
    ApiKeyEnvOpt,
    CacheOpt,
    EnvFileOpt,
    MaxConcurrencyOpt,
    MaxQpsOpt,
    SeedOpt,
    load_with_flags,
)
from assay.cli.synth import ConfigOpt, SetOpt, synth_app

SpecsOpt = list[str] | None


@synth_app.command("benchmark")
def benchmark_cmd(
    input_: Annotated[
        Path | None, typer.Option("--input", help="JSONL of vibe rows, e.g. runs/s/scored/TEST.jsonl.")
    ] = None,
    model: Annotated[
        SpecsOpt,
        typer.Option(
            "--model",
            metavar="MODEL[:LABEL]",
            help="An LLM (local/smollm2, local/PATH, openai/NAME, any LiteLLM string), constrained decoding on "
            "unless --unconstrained. Repeat.",
        ),
    ] = None,
    free_model: Annotated[
        SpecsOpt,
        typer.Option(
            "--free-model", metavar="MODEL[:LABEL]", help="An LLM sampled without constrained decoding. Repeat."
        ),
    ] = None,
    dataset_field: Annotated[
        SpecsOpt,
        typer.Option(
            "--dataset-field", metavar="FIELD[:LABEL]", help="Configs in a column of the input, e.g. config_payload."
        ),
    ] = None,
    retrieval: Annotated[
        SpecsOpt,
        typer.Option("--retrieval", metavar="MAP_DIR[:LABEL]", help="Nearest-vibe configs of an `assay music map`."),
    ] = None,
    random_: Annotated[bool, typer.Option("--random", help="Add uniformly random valid configs (the floor).")] = False,
    unconstrained: Annotated[
        bool, typer.Option("--unconstrained", help="--model sources without constrained decoding (llm.guided=false).")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Use the first N rows (by row_id).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for benchmark.json, benchmark_rows.jsonl.")] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Seconds rendered per config (score.audio_duration, 8).")
    ] = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    env_file: EnvFileOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    max_qps: MaxQpsOpt = None,
    cache: CacheOpt = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """One config per input row from each source; validity, audio score, reward, speed and success per source."""
    from rich.console import Console

    from assay.pipelines.synth.benchmark import SynthBenchmarkConfig, results_table, run_benchmark

    flags = {
        "benchmark.input": input_,
        "benchmark.models": model,
        "benchmark.free_models": free_model,
        "benchmark.dataset_fields": dataset_field,
        "benchmark.retrieval": retrieval,
        "benchmark.random": random_ or None,
        "benchmark.limit": limit,
        "benchmark.out": out,
        "llm.guided": False if unconstrained else None,
        "llm.api_base": api_base,
        "llm.api_key_env": api_key_env,
        "llm.env_file": env_file,
        "llm.max_concurrency": max_concurrency,
        "llm.max_qps": max_qps,
        "llm.cache": cache,
        "configs.seed": seed,
        "score.audio_duration": duration,
    }
    cfg = load_with_flags(SynthBenchmarkConfig, config, set_, flags)
    result = run_benchmark(cfg)
    Console(width=140).print(results_table(result))
    typer.echo(f"wrote {cfg.benchmark.out / 'benchmark.json'} and benchmark_rows.jsonl")
