"""The `assay` command. Each subcommand maps its options onto a typed function that lives in
its own subpackage; heavy imports happen inside the commands so `assay --help` is instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="assay: small text models (one transformer, three heads) and the data tools around them.",
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key: --set train.max_iters=500 (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
WhichOpt = Annotated[str, typer.Option("--checkpoint", help="Which checkpoint of a run: best or last.")]


@app.command()
def train(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this folder.")] = None,
) -> None:
    """Train a model (writes checkpoints, metrics.jsonl and loss.png into run.out_dir)."""
    from assay.config import load_config
    from assay.errors import ConfigError
    from assay.train.checkpoint import load_checkpoint
    from assay.train.config import TrainingConfig
    from assay.train.trainer import config_for_resume
    from assay.train.trainer import train as run_training

    overrides = list(set_ or [])
    if resume is not None:
        if config is not None:
            raise ConfigError("--resume continues a run with its saved config; use --set to change it, not -c")
        ckpt = load_checkpoint(resume, prefer="last")
        cfg = config_for_resume(ckpt, resume, overrides)
        result = run_training(cfg, resume=ckpt)
    else:
        cfg = load_config(TrainingConfig, config, overrides)
        result = run_training(cfg)
    if result.rank != 0:
        return
    if result.final:
        summary = f"validation loss {result.final['val_loss']:.4f}"
        if "bits_per_char" in result.final:
            summary += f", {result.final['bits_per_char']:.4f} bits/char"
            summary += " (diffusion ELBO)" if cfg.objective == "diffusion" else ""
        typer.echo(f"{summary} after {result.iters} iterations ({result.seconds:.0f} s)")
    typer.echo(f"run saved to {result.out_dir} (best/, last/, metrics.jsonl, loss.png)")


data_app = typer.Typer(no_args_is_help=True, help="Streams of training shards.")
app.add_typer(data_app, name="data")


@data_app.command("produce")
def produce(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Stream folder (default: data.stream).")] = None,
    workers: Annotated[int, typer.Option(help="Producer processes (one torch thread each).")] = 1,
    shards: Annotated[int | None, typer.Option(help="Train shards to make (default: until stopped).")] = None,
) -> None:
    """Write training shards (masked-LM or synthetic) into a stream folder, per [stream] in the config."""
    from assay.config import load_config
    from assay.data.produce import produce_stream
    from assay.errors import ConfigError
    from assay.train.config import TrainingConfig

    cfg = load_config(TrainingConfig, config, list(set_ or []))
    target = out or cfg.data.stream
    if target is None:
        raise ConfigError("say where the stream goes: --out DIR (or data.stream in the config)")
    summary = produce_stream(cfg, target, workers, shards)
    typer.echo(
        f"{summary['train_shards']} train and {summary['val_shards']} validation shards in {summary['out']} "
        f"({summary['seconds']:.0f} s)"
    )


@data_app.command("show")
def show(
    stream: Annotated[Path, typer.Argument(help="A stream folder.")],
    index: Annotated[int, typer.Option(help="Sample number within the split.")] = 0,
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


import assay.cli.music_retrieval  # noqa: E402, F401  (adds map/suggest to music_app)
import assay.cli.serve  # noqa: E402, F401  (adds `assay serve`)
import assay.cli.sft  # noqa: E402, F401  (adds train-sft/export-sft/train-grpo to synth_app)
import assay.cli.synth_benchmark  # noqa: E402, F401  (adds benchmark to synth_app)
from assay.cli.correct import correct_app  # noqa: E402
from assay.cli.music import music_app  # noqa: E402  (typer apps only: no heavy imports)
from assay.cli.synth import synth_app  # noqa: E402

app.add_typer(synth_app, name="synth")
app.add_typer(correct_app, name="correct")
app.add_typer(music_app, name="music")

experiment_app = typer.Typer(no_args_is_help=True, help="Experiments: many runs, one comparison.")
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("connectives")
def experiment_connectives(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Targeted masking of logical connectives vs random masking (docs/connectives.md): trains
    every strategy for every seed (finished runs are skipped), evaluates on the test books and
    writes results.json, results.md and plots into experiment.out_dir."""
    from assay.config import load_config
    from assay.pipelines.connectives import ConnectivesExperimentConfig, run_experiment

    cfg = load_config(ConnectivesExperimentConfig, config, list(set_ or []))
    run_experiment(cfg, log=typer.echo)
    out = Path(cfg.experiment.out_dir)
    typer.echo((out / "results.md").read_text().split("\n## ")[0].rstrip())
    typer.echo(f"results in {out} (results.json, results.md, recovery.png, per_class.png, confusion.png)")


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (their eval.json are read).")],
    as_json: JsonOpt = False,
) -> None:
    """A table of the final metrics of runs (eval.json), judges beside their likelihood baseline."""
    from assay.train.report import load_reports, render_table

    rows = load_reports(runs)
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        render_table(rows)


@app.command()
def generate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder or checkpoint folder.")],
    length: Annotated[int, typer.Option(help="New tokens to generate.")] = 500,
    steps: Annotated[int, typer.Option(help="Denoising steps per window (diffusion models).")] = 64,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 = greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    prompt: Annotated[str, typer.Option(help="Text to continue (kept as a prefix).")] = "",
    order: Annotated[
        str, typer.Option(help="Diffusion: re-mask the least 'confidence' tokens each step, or a 'random' subset.")
    ] = "confidence",
    checkpoint: WhichOpt = "best",
    as_json: JsonOpt = False,
) -> None:
    """Sample text from a language model (diffusion unmasking, or left to right if causal)."""
    from assay.errors import AssayError
    from assay.generate import generate_text
    from assay.train.checkpoint import load_checkpoint

    if not 0.0 < top_p <= 1.0 or temperature < 0:
        raise AssayError("--top-p must be in (0, 1] and --temperature >= 0")
    out = generate_text(
        load_checkpoint(run_dir, checkpoint), length, steps, temperature, top_p, seed, prompt, order=order
    )
    typer.echo(json.dumps(out) if as_json else out["text"])


@app.command("eval")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder or checkpoint folder.")],
    blocks: Annotated[int | None, typer.Option(help="Validation blocks to use (default: all).")] = None,
    elbo_points: Annotated[int | None, typer.Option(help="t-grid size for the diffusion ELBO.")] = None,
    checkpoint: WhichOpt = "best",
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a checkpoint on its validation split: loss, bits/char, and the ELBO for diffusion."""
    from assay.train.checkpoint import load_checkpoint
    from assay.train.evaluate import evaluate_checkpoint

    out = evaluate_checkpoint(load_checkpoint(run_dir, checkpoint), blocks, elbo_points)
    if as_json:
        typer.echo(json.dumps(out))
        return
    for key, value in out.items():
        typer.echo(f"{key:28s} {value:.4f}" if isinstance(value, float) else f"{key:28s} {value}")


@app.command()
def score(
    judge_dir: Annotated[Path, typer.Argument(help="A judge run, or a folder of judge runs.")],
    text: Annotated[str | None, typer.Argument(help="Text to score.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Score this text file (one text).")] = None,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="Score every row of a JSONL file.")] = None,
    field: Annotated[str, typer.Option(help="JSONL field holding the text.")] = "text",
    threshold: Annotated[float, typer.Option(help="Highlight tokens with p_replaced above this.")] = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Score texts: how much was machine-written (score) and which tokens (p_replaced)."""
    from assay.errors import AssayError
    from assay.scorers.judge import Judge
    from assay.scorers.render import read_texts, render

    if sum(x is not None for x in (text, file, jsonl)) != 1:
        raise AssayError("give exactly one of: TEXT, --file F, --jsonl F")
    texts = read_texts(text, file, jsonl, field)
    judge = Judge.load(judge_dir)
    for result in judge.score(texts):
        if as_json:
            typer.echo(json.dumps(result))
        else:
            render(result, threshold)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one `error: ...` line and exit code 2."""
    from assay.errors import AssayError

    try:
        code = app(args=argv, standalone_mode=False, prog_name="assay")
    except AssayError as exc:
        _fail(str(exc))
    except typer.Abort:
        _fail("aborted", 130)
    except typer.exceptions.TyperException as exc:  # usage errors: unknown option, bad value, ...
        _fail(exc.format_message() if hasattr(exc, "format_message") else str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except OSError as exc:  # unreadable/unwritable paths, full disks
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}")
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    sys.exit(code)
