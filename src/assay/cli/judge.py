"""`assay judge train`: a judge for your own corpus in one command (assay.judges.recipe, docs/judges.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from assay.cli.options import ConfigOpt, EndpointFlags, SetOpt, endpoint_options_last

judge_app = typer.Typer(no_args_is_help=True)


@judge_app.callback()
def judge() -> None:
    """Judges that spot machine-written text: train one on your corpus (`assay score` uses it)."""


@judge_app.command("train")
@endpoint_options_last  # the LLM endpoint options of every LLM command, after this command's own
def train(
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for the LM, the rewrites and the two judges.")
    ],
    corpus: Annotated[
        str | None,
        typer.Option(
            "--corpus",
            metavar="SPEC",
            help="The text to learn from: a shipped corpus (tinyshakespeare, shakespeare_plays, kjv, ...) or a "
            ".txt file, a folder of .txt files, a .jsonl with a text field. With --lm: the LM's corpus.",
            show_default=False,
        ),
    ] = None,
    lm: Annotated[
        Path | None,
        typer.Option("--lm", metavar="RUN", help="Use this masked-diffusion LM run instead of training one."),
    ] = None,
    rewriter: Annotated[
        Literal["lm", "llm", "jsonl"] | None,
        typer.Option(
            "--rewriter",
            help="What makes the machine-written text: lm (the LM fills masked spans), llm (--model rewrites "
            "spans), jsonl (your own labelled texts; implied by --jsonl).  [default: lm]",
            show_default=False,
        ),
    ] = None,
    jsonl: Annotated[
        Path | None,
        typer.Option(
            "--jsonl", metavar="FILE", help="Labelled texts for --rewriter jsonl: text plus labels, spans or score."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="MODEL",
            help="--rewriter llm: openai/NAME, anthropic/NAME, local/smollm2, or any LiteLLM model string.  "
            "[default: local/smollm2]",
            show_default=False,
        ),
    ] = None,
    lm_iters: Annotated[
        int | None,
        typer.Option(
            "--lm-iters", metavar="N", min=1, help="Training steps of the LM.  [default: 300]", show_default=False
        ),
    ] = None,
    judge_iters: Annotated[
        int | None,
        typer.Option(
            "--judge-iters",
            metavar="N",
            min=1,
            help="Training steps of each judge.  [default: 300]",
            show_default=False,
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            metavar="N",
            min=1,
            help="Training shards of rewrites (64 passages each).  [default: 60, llm: 8]",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue OUT: skip finished stages, continue an interrupted one.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start afresh: delete OUT's lm, stream, scorer and inspector.")
    ] = False,
    endpoint: EndpointFlags = None,
) -> None:
    """Train a judge of machine-written text for a corpus, in four stages: a masked-diffusion LM on
    the corpus (or --lm), its rewrites of real passages (OUT/stream), a sequence scorer and a
    token inspector fine-tuned from the LM with its shape; then each judge's held-out metrics
    beside the LM-likelihood baseline. Keys of -c / --set: lm.*, rewrite.*, llm.*, scorer.*,
    inspector.* (e.g. --set scorer.train.lr=5e-4; docs/judges.md).

    Example:

    \b
        assay judge train --corpus my.txt --out runs/myjudge
    """
    from assay.errors import ConfigError
    from assay.judges.recipe import render_summary, summary_rows, train_judge

    if jsonl is not None and rewriter not in (None, "jsonl"):
        raise ConfigError(f"--jsonl is the input of --rewriter jsonl, not of --rewriter {rewriter}")
    settings = {
        # labelled texts without --corpus or --lm: the LM learns from those texts (a .jsonl corpus reads `text`)
        "corpus": corpus if corpus is not None or lm is not None or jsonl is None else str(jsonl),
        "lm_run": lm,
        "rewrite.kind": rewriter or ("jsonl" if jsonl is not None else None),
        "rewrite.path": jsonl,
        "rewrite.shards": shards,
        "lm.train.max_iters": lm_iters,
        "scorer.train.max_iters": judge_iters,
        "inspector.train.max_iters": judge_iters,
        "llm.model": model,
    } | endpoint.overrides()
    result = train_judge(out, config=config, settings=settings, sets=set_ or [], resume=resume, overwrite=overwrite)
    render_summary(result, summary_rows(result))
    if result.interrupted:
        raise typer.Exit(130)
