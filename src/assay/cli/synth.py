"""`assay synth ...`: the synthetic-data pipeline (docs/synth.md), its benchmark and the local model's
fine-tuning (docs/sft.md). Every option of a step lives in the `SynthConfig` tree: set it in a TOML
file (`-c`), with the flags below, or with `--set key=value` (applied in that order, last wins)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from assay.cli.options import (
    ConfigOpt,
    EndpointFlags,
    EngineFlags,
    InputDirOpt,
    LLMFlags,
    OutputDirOpt,
    OverwriteOpt,
    SeedOpt,
    SetOpt,
    comma_list,
    echo_json,
    endpoint_options,
    engine_options,
    llm_options,
    load_with_flags,
)

synth_app = typer.Typer(no_args_is_help=True, help="Synthetic data: text -> vibes -> music configs -> scores.")


def _load(config, sets, flags: dict[str, object]):
    from assay.synth.config import SynthConfig

    return load_with_flags(SynthConfig, config, sets, flags)


def _echo_summary(summary: dict, out_dir: Path) -> None:
    echo_json(summary)
    typer.echo(f"output in {out_dir}")


@synth_app.command("ingest")
def ingest(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder for <dataset>.jsonl files.")],
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            metavar="SOURCE",
            help="shakespeare, kjv, folder:PATH or jsonl:PATH[:FIELD] (repeat).  [default: shakespeare, kjv]",
        ),
    ] = None,
    per_source: Annotated[
        int | None, typer.Option("--per-source", min=1, help="Texts sampled per source.  [default: 10]")
    ] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Build the pipeline's input JSONL (dataset, id_in_dataset, text, metadata, created) from local texts.

    Example:

    \b
        assay synth ingest --source shakespeare --per-source 20 --out runs/s/texts
    """
    from assay.synth.ingest import ingest as run_ingest

    cfg = _load(config, set_, {"ingest.sources": source, "ingest.per_source": per_source, "ingest.seed": seed})
    counts = run_ingest(cfg.ingest, out)
    for dataset, n in counts.items():
        typer.echo(f"{dataset}: {n} texts -> {out / (dataset + '.jsonl')}")


@synth_app.command("vibes")
@llm_options
@engine_options
def vibes(
    input_dir: InputDirOpt,
    output_dir: OutputDirOpt,
    llm: LLMFlags,
    engine: EngineFlags,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Extract vibes (xl/lg/m/sm/xs) per text, add typo noise, dedupe and split (TEST, SFT-Val, GRPO, SFT-Train).

    Example:

    \b
        assay synth vibes --input-dir runs/s/texts --out runs/s/vibes --model local/smollm2
    """
    from assay.synth.vibes import extract_vibes

    cfg = _load(config, set_, llm.overrides() | engine.overrides() | {"vibes.seed": seed})
    _echo_summary(extract_vibes(input_dir, output_dir, cfg.vibes, cfg.llm, cfg.runner), output_dir)


@synth_app.command("configs")
@llm_options
@engine_options
def configs(
    input_dir: InputDirOpt,
    output_dir: OutputDirOpt,
    llm: LLMFlags,
    engine: EngineFlags,
    num_candidates: Annotated[
        int | None, typer.Option("--num-candidates", min=1, help="Best-of-N.  [default: 3]")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", min=0.0, help="Sampling temperature.  [default: 0.8]")
    ] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Generate best-of-N music configs for every vibe row; keep all candidates and their validity.

    Example:

    \b
        assay synth configs --input-dir runs/s/vibes --out runs/s/configs --num-candidates 3
    """
    from assay.synth.music_configs import generate_configs

    flags = {"configs.seed": seed, "configs.num_candidates": num_candidates, "configs.temperature": temperature}
    cfg = _load(config, set_, llm.overrides() | engine.overrides() | flags)
    _echo_summary(generate_configs(input_dir, output_dir, cfg.configs, cfg.llm, cfg.runner), output_dir)


@synth_app.command("score")
@llm_options
@engine_options
def score(
    input_dir: InputDirOpt,
    output_dir: OutputDirOpt,
    llm: LLMFlags,
    engine: EngineFlags,
    scorers: Annotated[
        str | None,
        typer.Option(
            "--scorers",
            metavar="LIST",
            help="Comma list: audio, reward, llm_judge, assay_judge, file.py:fn.  [default: audio]",
        ),
    ] = None,
    judge_dir: Annotated[
        Path | None, typer.Option("--judge-dir", metavar="DIR", help="Judge run for the assay_judge scorer.")
    ] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Score all valid candidates (first scorer primary), re-select the best, store candidate_scores.

    Example:

    \b
        assay synth score --input-dir runs/s/configs --out runs/s/scored --scorers audio,reward
    """
    from assay.synth.score import score_configs

    del seed  # the built-in scorers are deterministic; kept for the common command contract
    flags = {"score.scorers": comma_list(scorers), "score.judge_dir": judge_dir}
    cfg = _load(config, set_, llm.overrides() | engine.overrides() | flags)
    _echo_summary(score_configs(input_dir, output_dir, cfg.score, cfg.llm, cfg.runner), output_dir)


SpecsOpt = list[str] | None


@synth_app.command("inspect")
def inspect_cmd(
    folder: Annotated[Path, typer.Argument(help="An output folder of synth vibes, configs or score.")],
    texts: Annotated[
        Path | None,
        typer.Option(
            "--texts", metavar="DIR", help="The texts folder of `synth ingest`: adds the vibes' relevance AUROC."
        ),
    ] = None,
    audio: Annotated[
        bool, typer.Option("--audio/--no-audio", help="Measure the audio scorer's AUROC (renders every config).")
    ] = True,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", help="Also write the JSON here.")] = None,
) -> None:
    """How much a reader would accept of the data in FOLDER: tags that are schema keys or
    placeholders vs mood words, vibes with loops, vibe relevance to their texts, config variety and
    the audio scorer's matched-vs-shuffled AUROC (docs/synth.md, "Quality").

    Example:

    \b
        assay synth inspect runs/synth/scored --texts runs/synth/texts
    """
    from assay.errors import DataError
    from assay.io import atomic_write_json
    from assay.synth.quality import inspect

    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    if texts is not None and not texts.is_dir():
        raise DataError(f"no such texts folder: {texts}")
    result = inspect(folder, texts, audio=audio)
    if out is not None:
        atomic_write_json(out, result)
    echo_json(result)


@synth_app.command("benchmark")
@endpoint_options
def benchmark(
    endpoint: EndpointFlags,
    input_: Annotated[
        Path | None, typer.Option("--input", metavar="FILE", help="JSONL of vibe rows, e.g. runs/s/scored/TEST.jsonl.")
    ] = None,
    model: Annotated[
        SpecsOpt,
        typer.Option(
            "--model",
            metavar="[LABEL=]MODEL",
            help="An LLM (local/smollm2, local/PATH, openai/NAME, any LiteLLM string), constrained decoding on "
            "unless --unconstrained. Repeat.",
        ),
    ] = None,
    free_model: Annotated[
        SpecsOpt,
        typer.Option(
            "--free-model", metavar="[LABEL=]MODEL", help="An LLM sampled without constrained decoding. Repeat."
        ),
    ] = None,
    dataset_field: Annotated[
        SpecsOpt,
        typer.Option(
            "--dataset-field", metavar="[LABEL=]FIELD", help="Configs in a column of the input, e.g. config_payload."
        ),
    ] = None,
    retrieval: Annotated[
        SpecsOpt,
        typer.Option("--retrieval", metavar="[LABEL=]MAP_DIR", help="Nearest-vibe configs of an `assay music map`."),
    ] = None,
    random_: Annotated[bool, typer.Option("--random", help="Add uniformly random valid configs (the floor).")] = False,
    unconstrained: Annotated[
        bool, typer.Option("--unconstrained", help="--model sources without constrained decoding (llm.guided=false).")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Use the first N rows (by row_id).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Folder for benchmark.json, benchmark_rows.jsonl.  [default: runs/synth_benchmark]",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.1, help="Seconds rendered per config (score.audio_duration).  [default: 8]"),
    ] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """One config per input row from each source; validity, audio score, reward, speed and success per source.

    A source is labelled in the table with LABEL= in front of it (model ids may hold colons).

    Example:

    \b
        assay synth benchmark --input runs/s/scored/TEST.jsonl --random --model base=local/smollm2 --out runs/s/bench
    """
    from rich.console import Console

    from assay.synth.benchmark import SynthBenchmarkConfig, results_table, run_benchmark

    flags = endpoint.overrides() | {
        "benchmark.input": input_,
        "benchmark.models": model,
        "benchmark.free_models": free_model,
        "benchmark.dataset_fields": dataset_field,
        "benchmark.retrieval": retrieval,
        "benchmark.random": random_ or None,
        "benchmark.limit": limit,
        "benchmark.out": out,
        "llm.guided": False if unconstrained else None,
        "configs.seed": seed,
        "score.audio_duration": duration,
    }
    cfg = load_with_flags(SynthBenchmarkConfig, config, set_, flags)
    result = run_benchmark(cfg)
    Console(width=140).print(results_table(result))
    typer.echo(f"wrote {cfg.benchmark.out / 'benchmark.json'} and benchmark_rows.jsonl")


BaseOpt = Annotated[
    str | None,
    typer.Option(
        "--base",
        metavar="MODEL",
        help="Base model: local/smollm2 or local/PATH (an HF directory).  [default: local/smollm2]",
    ),
]


@synth_app.command("train-sft")
def train_sft(
    data: Annotated[
        Path | None, typer.Option("--data", metavar="FILE", help="SFT-Train.jsonl (rows with a config_payload).")
    ] = None,
    val: Annotated[
        Path | None, typer.Option("--val", metavar="FILE", help="SFT-Val.jsonl for the validation loss.")
    ] = None,
    base: BaseOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", metavar="DIR", help="Run folder (run.out_dir).  [default: runs/sft]")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")] = False,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fine-tune the base model with LoRA on assistant tokens (vibe -> payload JSON).

    Example:

    \b
        assay synth train-sft --data runs/s/scored/SFT-Train.jsonl --val runs/s/scored/SFT-Val.jsonl --out runs/sft
    """
    from assay.config import load_config
    from assay.errors import ConfigError
    from assay.synth.sft.config import SFTConfig
    from assay.synth.sft.data import check_split, checked_rows

    flags = {
        "data.train": str(data) if data else None,
        "data.val": str(val) if val else None,
        "model.base": base,
        "run.out_dir": str(out) if out else None,
    }
    if resume:
        if out is None:
            raise ConfigError("--resume needs --out: the run folder to continue")
        saved = out / "config.json"
        if not saved.is_file():
            raise ConfigError(f"nothing to resume: {saved} not found")
        try:
            tree = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise ConfigError(f"{saved} is not readable JSON") from None
        overrides = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
        cfg = load_config(SFTConfig, config, overrides + list(set_ or []), base=tree)
    else:
        cfg = load_with_flags(SFTConfig, config, set_, flags)
    fields = cfg.data.prompt_field, cfg.data.target_field
    if cfg.data.train is not None:  # a bad file fails now, not once the base model has loaded
        check_split(cfg.data.train, *fields)
    if cfg.data.val is not None:
        for _ in checked_rows(cfg.data.val, *fields):
            pass
    from assay.synth.sft.loop import train_sft as run_sft  # transformers: seconds to import

    echo_json(run_sft(cfg, resume=resume, overwrite=overwrite))
    typer.echo(f"adapter in {Path(cfg.run.out_dir) / 'adapter'}; merge it with: assay synth export-sft")


@synth_app.command("export-sft")
def export_sft(
    adapter: Annotated[Path, typer.Argument(help="An adapter directory, or a train-sft run folder.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Folder for the merged HF model (model.safetensors, tokenizer)."
        ),
    ],
    base: BaseOpt = None,
) -> None:
    """Merge a LoRA adapter into its base model: a standalone directory `--model local/PATH` loads.

    Example:

    \b
        assay synth export-sft runs/sft --out runs/sft-merged
    """
    from assay.synth.sft.lora import export

    result = export(adapter, out, base)
    typer.echo(f"merged {result['adapter']} into {result['merged']} (use it as local/{result['merged']})")


@synth_app.command("train-grpo")
def train_grpo(
    data: Annotated[Path, typer.Option("--data", metavar="FILE", help="GRPO.jsonl (rows with a vibe).")],
    base: Annotated[
        str, typer.Option("--base", metavar="MODEL", help="The SFT policy: local/MERGED_DIR (from export-sft).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Run folder: metrics.jsonl and the GRPO adapter.")
    ],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """A few GRPO steps on the seed's reward (mechanics; docs/sft.md says what a real run needs).

    Example:

    \b
        assay synth train-grpo --data runs/s/scored/GRPO.jsonl --base local/runs/sft-merged --out runs/grpo
    """
    from assay.synth.sft.grpo import GRPOConfig
    from assay.synth.sft.grpo import train_grpo as run_grpo

    cfg = load_with_flags(GRPOConfig, config, set_, {"data": str(data), "base": base, "out_dir": str(out)})
    echo_json(run_grpo(cfg))
