"""The model commands: `assay train`, `eval`, `generate`, `report` and `assay data produce | show`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from assay.cli.options import CheckpointOpt, ConfigOpt, JsonOpt, SetOpt


def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", metavar="RUN", help="Continue the run in this folder (or RUN/last).")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Start afresh in run.out_dir even if it holds a run (deletes its checkpoints)."
        ),
    ] = False,
) -> None:
    """Train a model (writes checkpoints, metrics.jsonl and loss.png into run.out_dir).

    A folder that already holds a run is refused: continue it with --resume, or replace it with
    --overwrite. Ctrl-C or SIGTERM saves last/ before stopping."""
    from assay.checkpoint_io import run_folder
    from assay.cli.tasks import TASKS
    from assay.errors import ConfigError
    from assay.train.checkpoint import load_checkpoint
    from assay.train.task import load_training_config
    from assay.train.trainer import config_for_resume
    from assay.train.trainer import train as run_training

    overrides = list(set_ or [])
    if resume is not None:
        if config is not None:
            raise ConfigError("--resume continues a run with its saved config; use --set to change it, not -c")
        if overwrite:
            raise ConfigError("--resume and --overwrite are exclusive: continue the run, or start it afresh")
        ckpt = load_checkpoint(resume, prefer="last", tasks=TASKS)
        cfg = config_for_resume(ckpt, run_folder(resume), overrides)  # RUN/last continues RUN, not a run inside it
        result = run_training(cfg, resume=ckpt, tasks=TASKS)
    else:
        cfg = load_training_config(config, overrides, TASKS)
        result = run_training(cfg, tasks=TASKS, overwrite=overwrite)
    if result.rank != 0:
        return
    if result.final:
        summary = f"validation loss {result.final['val_loss']:.4f}"
        if "bits_per_char" in result.final:
            summary += f", {result.final['bits_per_char']:.4f} bits/char"
            summary += " (diffusion ELBO)" if cfg.objective == "diffusion" else ""
        typer.echo(f"{summary} after {result.iters} iterations ({result.seconds:.0f} s)")
    typer.echo(f"run saved to {result.out_dir} (best/, last/, metrics.jsonl, loss.png)")


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder or checkpoint folder.")],
    blocks: Annotated[int | None, typer.Option(min=1, help="Validation blocks to use (default: all).")] = None,
    elbo_points: Annotated[int | None, typer.Option(min=1, help="t-grid size for the diffusion ELBO.")] = None,
    stream: Annotated[
        Path | None,
        typer.Option(
            "--stream",
            metavar="DIR",
            help="Evaluate on this stream's validation shards instead (a judge on another synthetic stream, "
            "a diffusion LM on a masked-LM stream); its tokenizer must be the checkpoint's.",
        ),
    ] = None,
    corpus: Annotated[
        str | None,
        typer.Option(
            "--corpus",
            metavar="SPEC",
            help="Evaluate on this corpus's validation split instead (a shipped name such as heldout, or a path); "
            "a judge gets a temporary stream made from it with its own stream's settings.",
        ),
    ] = None,
    checkpoint: CheckpointOpt = "best",
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a checkpoint on its validation split (or another stream's or corpus's): loss,
    bits/char and the ELBO for diffusion; a judge's metrics beside its likelihood baseline."""
    from assay.cli.tasks import PROVIDERS, TASKS
    from assay.errors import ConfigError
    from assay.train.checkpoint import load_checkpoint
    from assay.train.evaluate import evaluate_checkpoint

    if stream is not None and corpus is not None:
        raise ConfigError("--stream and --corpus are exclusive: evaluate on one of them")
    ckpt = load_checkpoint(run_dir, checkpoint, tasks=TASKS)
    out = evaluate_checkpoint(ckpt, blocks, elbo_points, stream=stream, corpus=corpus, providers=PROVIDERS)
    if as_json:
        typer.echo(json.dumps(out))
        return
    for key, value in out.items():
        typer.echo(f"{key:28s} {value:.4f}" if isinstance(value, float) else f"{key:28s} {value}")


def generate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder or checkpoint folder.")],
    length: Annotated[int, typer.Option(min=1, help="New tokens to generate.")] = 500,
    steps: Annotated[int, typer.Option(min=1, help="Denoising steps per window (diffusion models).")] = 64,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature; 0 = greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    prompt: Annotated[str, typer.Option(help="Text to continue (kept as a prefix).")] = "",
    sampler: Annotated[
        str | None,
        typer.Option(
            help="Diffusion sampler: confidence (re-mask the least confident), random, ancestral (MDLM) or "
            "remdm (ancestral with re-masking). Default: the one docs/generation.md measured best.",
            show_default=False,
        ),
    ] = None,
    eta: Annotated[float, typer.Option(help="remdm: cap on the probability of re-masking a token per step.")] = 0.02,
    checkpoint: CheckpointOpt = "best",
    as_json: JsonOpt = False,
) -> None:
    """Sample text from a language model (diffusion unmasking, or left to right if causal)."""
    from assay.cli.tasks import TASKS
    from assay.errors import AssayError
    from assay.generate import DEFAULT_SAMPLER, generate_text
    from assay.train.checkpoint import load_checkpoint

    if not 0.0 < top_p <= 1.0:
        raise AssayError(f"--top-p must be in (0, 1], not {top_p:g}")
    ckpt = load_checkpoint(run_dir, checkpoint, tasks=TASKS)
    sampler = sampler or DEFAULT_SAMPLER
    out = generate_text(ckpt, length, steps, temperature, top_p, seed, prompt, sampler=sampler, eta=eta)
    typer.echo(json.dumps(out) if as_json else out["text"])


def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (their eval.json are read).")],
    as_json: JsonOpt = False,
) -> None:
    """A table of the final metrics of runs (eval.json), judges beside their likelihood baseline."""
    from assay.cli.tasks import TASKS
    from assay.io import JSON_MAX, check_size
    from assay.train.report import load_reports, render_table

    for run in runs:  # both are read whole: refuse a runaway file before reading it
        for name in ("eval.json", "config.json"):
            if (run / name).is_file():
                check_size(run / name, JSON_MAX, f"a run's {name}")
    rows = load_reports(runs, TASKS)
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        render_table(rows)


data_app = typer.Typer(no_args_is_help=True, help="Streams of training shards.")


@data_app.command("produce")
def produce(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Stream folder (default: data.stream).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Producer processes (one torch thread each).")] = 1,
    shards: Annotated[int | None, typer.Option(min=1, help="Train shards to make (default: until stopped).")] = None,
) -> None:
    """Write training shards (masked-LM or synthetic) into a stream folder, per [stream] in the config."""
    from assay.cli.tasks import PROVIDERS, TASKS
    from assay.data.produce import produce_stream
    from assay.errors import ConfigError
    from assay.io import writing
    from assay.train.task import load_training_config

    cfg = load_training_config(config, list(set_ or []), TASKS)
    target = out or cfg.data.stream
    if target is None:
        raise ConfigError("say where the stream goes: --out DIR (or data.stream in the config)")
    with writing(target):
        summary = produce_stream(cfg, target, workers, shards, provider_class=PROVIDERS[cfg.stream.provider])
    typer.echo(
        f"{summary['train_shards']} train and {summary['val_shards']} validation shards in {summary['out']} "
        f"({summary['seconds']:.0f} s)"
    )


@data_app.command("show")
def show(
    stream: Annotated[Path, typer.Argument(help="A stream folder.")],
    index: Annotated[int, typer.Option(min=0, help="Sample number within the split.")] = 0,
    split: Annotated[str, typer.Option(help="val or train.")] = "val",
    text_only: Annotated[bool, typer.Option("--text", help="Print only the sample's (synthetic) text.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show one sample of a stream: its text and, for synthetic data, the original and labels."""
    from assay.data.inspect import describe_sample

    out = describe_sample(stream, split, index)
    if as_json:
        typer.echo(json.dumps(out))
    elif text_only:
        typer.echo(out["text"])
    else:
        for key, value in out.items():
            typer.echo(f"{key}: {value}")
