"""`assay synth ...`: the synthetic-data pipeline (docs/synth.md). Every option lives in the
`SynthConfig` tree: set it in a TOML file (`-c`), with the flags below, or with `--set key=value`
(applied in that order, last wins)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from assay.cli.llm_options import (
    ApiBaseOpt,
    ApiKeyEnvOpt,
    CacheOpt,
    EnvFileOpt,
    LimitOpt,
    MaxConcurrencyOpt,
    MaxQpsOpt,
    ModelOpt,
    ResumeOpt,
    SeedOpt,
    llm_flags,
    load_with_flags,
)

synth_app = typer.Typer(no_args_is_help=True, help="Synthetic data: text -> vibes -> music configs -> scores.")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (SynthConfig).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config key, e.g. vibes.error_rate=0.2.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Start the output afresh.")]
InDirOpt = Annotated[Path, typer.Option("--input-dir", help="Folder with the previous step's JSONL files.")]
OutDirOpt = Annotated[Path, typer.Option("--output-dir", help="Folder for this step's JSONL files.")]


def _load(config, sets, flags: dict[str, object]):
    from assay.pipelines.synth.config import SynthConfig

    return load_with_flags(SynthConfig, config, sets, flags)


def _echo_summary(summary: dict, out_dir: Path) -> None:
    typer.echo(json.dumps(summary, indent=2, default=str))
    typer.echo(f"output in {out_dir}")


@synth_app.command("ingest")
def ingest_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output folder for <dataset>.jsonl files.")],
    source: Annotated[
        list[str] | None, typer.Option("--source", help="shakespeare, kjv, folder:PATH, jsonl:PATH[:FIELD] (repeat).")
    ] = None,
    per_source: Annotated[int | None, typer.Option("--per-source", help="Texts sampled per source.")] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Build the pipeline's input JSONL (dataset, id_in_dataset, text, metadata, created) from local texts."""
    from assay.pipelines.synth.ingest import ingest

    cfg = _load(config, set_, {"ingest.sources": source, "ingest.per_source": per_source, "ingest.seed": seed})
    counts = ingest(cfg.ingest, out)
    for dataset, n in counts.items():
        typer.echo(f"{dataset}: {n} texts -> {out / (dataset + '.jsonl')}")


@synth_app.command("vibes")
def vibes_cmd(
    input_dir: InDirOpt,
    output_dir: OutDirOpt,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    env_file: EnvFileOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    max_qps: MaxQpsOpt = None,
    cache: CacheOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Extract vibes (xl/lg/m/sm/xs) per text, add typo noise, dedupe and split (TEST, SFT-Val, GRPO, SFT-Train)."""
    from assay.pipelines.synth.vibes import extract_vibes

    flags = llm_flags(model, api_base, api_key_env, env_file, max_concurrency, max_qps, cache, limit, resume, overwrite)
    cfg = _load(config, set_, flags | {"vibes.seed": seed})
    _echo_summary(extract_vibes(input_dir, output_dir, cfg.vibes, cfg.llm, cfg.runner), output_dir)


@synth_app.command("configs")
def configs_cmd(
    input_dir: InDirOpt,
    output_dir: OutDirOpt,
    num_candidates: Annotated[int | None, typer.Option("--num-candidates", help="Best-of-N (default 3).")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Sampling temperature (0.8).")] = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    env_file: EnvFileOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    max_qps: MaxQpsOpt = None,
    cache: CacheOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Generate best-of-N music configs for every vibe row; keep all candidates and their validity."""
    from assay.pipelines.synth.configs import generate_configs

    flags = llm_flags(model, api_base, api_key_env, env_file, max_concurrency, max_qps, cache, limit, resume, overwrite)
    flags |= {"configs.seed": seed, "configs.num_candidates": num_candidates, "configs.temperature": temperature}
    cfg = _load(config, set_, flags)
    _echo_summary(generate_configs(input_dir, output_dir, cfg.configs, cfg.llm, cfg.runner), output_dir)


@synth_app.command("score")
def score_cmd(
    input_dir: InDirOpt,
    output_dir: OutDirOpt,
    scorers: Annotated[
        str | None, typer.Option("--scorers", help="Comma list: audio, reward, llm_judge, assay_judge, file.py:fn.")
    ] = None,
    judge_dir: Annotated[Path | None, typer.Option("--judge-dir", help="Judge run for the assay_judge scorer.")] = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    env_file: EnvFileOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    max_qps: MaxQpsOpt = None,
    cache: CacheOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Score all valid candidates (first scorer primary), re-select the best, store candidate_scores."""
    from assay.pipelines.synth.score import score_configs

    del seed  # the built-in scorers are deterministic; kept for the common command contract
    flags = llm_flags(model, api_base, api_key_env, env_file, max_concurrency, max_qps, cache, limit, resume, overwrite)
    names = [s.strip() for s in scorers.split(",") if s.strip()] if scorers is not None else None
    cfg = _load(config, set_, flags | {"score.scorers": names, "score.judge_dir": judge_dir})
    _echo_summary(score_configs(input_dir, output_dir, cfg.score, cfg.llm, cfg.runner), output_dir)
