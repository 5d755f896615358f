"""The model commands: `assay train`, `eval`, `generate`, `report` and `assay data produce | show`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from assay.cli.options import CheckpointOpt, ConfigOpt, DeviceOpt, JsonOpt, RayAddressOpt, SetOpt

DEFAULT_SAMPLER_SHOWN = "ancestral"  # assay.generate.DEFAULT_SAMPLER (imports torch); a test keeps them equal

OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", metavar="DIR", help="The run folder (sets run.out_dir).", show_default="run.out_dir"),
]


def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: OutOpt = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the run in the run folder, with its saved config (and --set)."),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Start afresh in the run folder even if it holds a run (deletes its checkpoints)."
        ),
    ] = False,
    print_config: Annotated[
        bool,
        typer.Option("--print-config", help="Print the whole resolved config as TOML and exit; nothing is trained."),
    ] = False,
) -> None:
    """Train a model: best/ and last/ checkpoints, metrics.jsonl, loss.png and eval.json in the run
    folder (--out, else run.out_dir). Without -c it trains the built-in defaults (docs/train.md
    lists every key).

    A folder that already holds a run is refused: continue it with --resume (the run's saved
    config, plus --set; a -c file then only names the folder, through its run.out_dir), or
    replace it with --overwrite. Ctrl-C or SIGTERM saves last/ before stopping. Under torchrun
    every process runs this same command.

    Example:

    \b
        assay train -c shakespeare_char --out runs/mine --set train.max_iters=600
    """
    import os

    from assay.checkpoint_io import run_folder
    from assay.cli.tasks import TASKS
    from assay.config import build_tree
    from assay.data.corpus import check_corpus_spec
    from assay.devices import resolve_device
    from assay.errors import CheckpointError, ConfigError
    from assay.tracking import check_backend
    from assay.train.checkpoint import load_checkpoint
    from assay.train.config import RunConfig
    from assay.train.reference import config_summary, config_toml
    from assay.train.task import load_training_config
    from assay.train.trainer import RUN_FILES, config_for_resume
    from assay.train.trainer import train as run_training

    if resume and overwrite:
        raise ConfigError("--resume and --overwrite are exclusive: continue the run, or start it afresh")
    overrides = list(set_ or [])
    ckpt = None
    if resume:
        named = (build_tree(config, overrides).get("run") or {}).get("out_dir") if out is None else None
        folder = run_folder(out if out is not None else named or RunConfig.model_fields["out_dir"].default)
        if not folder.exists():
            raise CheckpointError(f"nothing to resume: {folder} does not exist")
        ckpt = load_checkpoint(out or folder, prefer="last", tasks=TASKS)  # RUN/last: that checkpoint
        cfg = config_for_resume(ckpt, folder, overrides)
    else:
        flags = [f"run.out_dir={json.dumps(str(run_folder(out)))}"] if out is not None else []
        cfg = load_training_config(config, flags + overrides, TASKS)
    if print_config:
        typer.echo(config_toml(cfg), nl=False)
        return
    device = resolve_device(cfg.run.device, int(os.environ.get("LOCAL_RANK", "0")))  # a missing GPU: now
    if not cfg.data.stream:
        check_corpus_spec(cfg.data.corpus)  # a missing corpus too, before the run is announced
    check_backend(cfg.log)  # and a missing tracker extra
    holds_a_run = any((Path(cfg.run.out_dir) / name).exists() for name in RUN_FILES)
    if os.environ.get("RANK", "0") == "0" and (resume or overwrite or not holds_a_run):  # else the trainer refuses
        opening = _opening(cfg, config, out, overrides, ckpt, overwrite and holds_a_run)
        for line in [opening, *("  " + line for line in config_summary(cfg)), "  " + _device_line(cfg, device)]:
            typer.echo(line, err=True)
    result = run_training(cfg, resume=ckpt, tasks=TASKS, overwrite=overwrite)
    if result.rank != 0:
        return
    if result.final:
        summary = f"validation loss {result.final['val_loss']:.4f}"
        if "bits_per_char" in result.final:
            summary += f", {result.final['bits_per_char']:.4f} bits/char"
            summary += " (diffusion ELBO)" if cfg.objective == "diffusion" else ""
        typer.echo(f"{summary} after {result.iters} iterations ({result.seconds:.0f} s)")
    typer.echo(f"run saved to {result.out_dir} (best/, last/, metrics.jsonl, loss.png)")
    for line in _next_steps(cfg, result):
        typer.echo(line)


def _opening(cfg, config: Path | None, out: Path | None, overrides: list[str], ckpt, replacing: bool) -> str:
    """The first line `assay train` prints: where it writes, and from which config."""
    from assay import configs

    where = cfg.run.out_dir
    sets = f", {len(overrides)} --set" if overrides else ""
    if config is not None and config.stem in configs.names() and configs.resolve(config.stem) == config:
        config = config.stem  # a shipped config: by its name
    if ckpt is not None:
        unused = "" if config is None else f"; -c {config} {'only named the folder' if out is None else 'is not used'}"
        return f"assay train: continuing {where} from iter {ckpt.state['iter']} (its saved config{sets}{unused})"
    source = f"config {config}{sets}" if config is not None else f"no -c: the built-in defaults{sets}"
    return f"assay train: {'starting afresh in' if replacing else 'a new run in'} {where} ({source})"


def _device_line(cfg, device) -> str:
    import os

    setting = "" if cfg.run.device == str(device) else f" (run.device = {cfg.run.device})"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return f"device     {device}{setting}" + (
        f", {world} processes (torchrun), batches per process" if world > 1 else ""
    )


def _next_steps(cfg, result) -> list[str]:
    """How to go on with a finished (or interrupted) run: continue it, and use it."""
    import shlex

    run = shlex.quote(str(result.out_dir))
    if result.interrupted:
        return [f"continue:  assay train --out {run} --resume"]
    more = f"assay train --out {run} --resume --set train.max_iters={2 * result.iters}"
    use = (
        f"assay generate {run} --length 200"
        if cfg.model.mode == "language_model"
        else f"assay score {run} 'a text to judge'"
    )
    return [f"use it:    {use}", f"           assay eval {run}", f"train on:  {more}"]


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder or checkpoint folder.")],
    blocks: Annotated[int | None, typer.Option(min=1, help="Validation blocks to use.", show_default="all")] = None,
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
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a checkpoint on its validation split (or another stream's or corpus's): loss,
    bits/char and the ELBO for diffusion; a judge's metrics beside its likelihood baseline.

    Example:

    \b
        assay eval runs/shakespeare_char --corpus heldout
    """
    from assay.cli.tasks import PROVIDERS, TASKS
    from assay.devices import resolve_device
    from assay.errors import ConfigError
    from assay.train.checkpoint import load_checkpoint
    from assay.train.evaluate import evaluate_checkpoint

    if stream is not None and corpus is not None:
        raise ConfigError("--stream and --corpus are exclusive: evaluate on one of them")
    where = resolve_device(device)  # before the slow part: a missing GPU fails at once
    ckpt = load_checkpoint(run_dir, checkpoint, tasks=TASKS)
    out = evaluate_checkpoint(ckpt, blocks, elbo_points, where, stream=stream, corpus=corpus, providers=PROVIDERS)
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
            "remdm (ancestral with re-masking).",
            show_default=f"{DEFAULT_SAMPLER_SHOWN}, the best in docs/generation.md",
        ),
    ] = None,
    eta: Annotated[float, typer.Option(help="remdm: cap on the probability of re-masking a token per step.")] = 0.02,
    checkpoint: CheckpointOpt = "best",
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample text from a language model (diffusion unmasking, or left to right if causal).

    Example:

    \b
        assay generate runs/shakespeare_char --length 200 --prompt "ROMEO:"
    """
    from assay.cli.tasks import TASKS
    from assay.devices import resolve_device
    from assay.errors import AssayError
    from assay.generate import DEFAULT_SAMPLER, generate_text
    from assay.train.checkpoint import load_checkpoint

    if not 0.0 < top_p <= 1.0:
        raise AssayError(f"--top-p must be in (0, 1], not {top_p:g}")
    where = resolve_device(device)  # before the slow part: a missing GPU fails at once
    ckpt = load_checkpoint(run_dir, checkpoint, tasks=TASKS)
    sampler = sampler or DEFAULT_SAMPLER
    out = generate_text(ckpt, length, steps, temperature, top_p, seed, prompt, where, sampler=sampler, eta=eta)
    typer.echo(json.dumps(out) if as_json else out["text"])


def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (their eval.json are read).")],
    as_json: JsonOpt = False,
) -> None:
    """A table of the final metrics of runs (eval.json), judges beside their likelihood baseline.

    Example:

    \b
        assay report runs/shakespeare_char runs/shakespeare_char_ar
    """
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
    out: Annotated[
        Path | None, typer.Option("--out", "-o", metavar="DIR", help="The stream folder.", show_default="data.stream")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Producer processes (one torch thread each).")] = 1,
    shards: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Train shards to make; without it the producer runs until stopped (needs a stream.max_backlog).",
            show_default="until stopped",
        ),
    ] = None,
    device: DeviceOpt = None,
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(help="local: worker processes here; ray: Ray tasks (pip install 'assay[ray]'; docs/scale.md)."),
    ] = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Write training shards (masked-LM or synthetic) into a stream folder, per [stream] in the
    config. The synthetic provider's LM runs on --device. Re-run on the same folder to continue it.
    The shards are the same bytes whatever --workers and --engine.

    Example:

    \b
        assay data produce -c judge_shakespeare --workers 2 --shards 60
    """
    from assay.cli.tasks import PROVIDERS, TASKS
    from assay.data.produce import produce_stream
    from assay.devices import resolve_device
    from assay.errors import ConfigError
    from assay.io import writing
    from assay.train.task import load_training_config

    cfg = load_training_config(config, list(set_ or []), TASKS)
    target = out or cfg.data.stream
    if target is None:
        raise ConfigError("say where the stream goes: --out DIR (or data.stream in the config)")
    if shards is None and cfg.stream.max_backlog is None:
        raise ConfigError(
            "without --shards the producer runs until stopped, and stream.max_backlog = none would let it fill "
            "the disk: pass --shards N, or limit the backlog (--set stream.max_backlog=16)"
        )
    where = resolve_device(device)
    with writing(target):
        maker = PROVIDERS[cfg.stream.provider]
        summary = produce_stream(
            cfg, target, workers, shards, provider_class=maker, device=where, engine=engine, ray_address=ray_address
        )
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
    """Show one sample of a stream: its text and, for synthetic data, the original and labels.

    Example:

    \b
        assay data show runs/judges/stream --index 3
    """
    from assay.data.inspect import describe_sample

    out = describe_sample(stream, split, index)
    if as_json:
        typer.echo(json.dumps(out))
    elif text_only:
        typer.echo(out["text"])
    else:
        for key, value in out.items():
            typer.echo(f"{key}: {value}")
