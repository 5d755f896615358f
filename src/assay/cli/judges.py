"""`assay score`: score texts with trained judges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from assay.cli.options import DeviceOpt, JsonOpt


def score(
    judge_dir: Annotated[Path, typer.Argument(help="A judge run, or a folder of judge runs.")],
    text: Annotated[str | None, typer.Argument(help="Text to score.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Score this text file (one text).")] = None,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="Score every row of a JSONL file.")] = None,
    field: Annotated[str, typer.Option(help="JSONL field holding the text.")] = "text",
    threshold: Annotated[float, typer.Option(help="Highlight tokens with p_replaced above this.")] = 0.5,
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help="A synthetic stream: score K held-out (real passage, rewrite) pairs from its validation split "
            "and print the share the judge ranks the right way.",
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="--pairs: how many pairs.")] = 50,
    examples: Annotated[int, typer.Option(min=0, help="--pairs: pairs to print with their token highlights.")] = 2,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score texts: how much was machine-written (score) and which tokens (p_replaced).

    Example:

    \b
        assay score runs/judges "Good morrow, neighbour Baptista."
    """
    from assay.devices import resolve_device
    from assay.errors import AssayError
    from assay.judges import Judge
    from assay.judges.render import read_texts, render, render_pairs

    if sum(x is not None for x in (text, file, jsonl, pairs)) != 1:
        raise AssayError("give exactly one of: TEXT, --file F, --jsonl F, --pairs STREAM")
    where = resolve_device(device)  # before the slow part: a missing GPU fails at once
    if pairs is not None:
        from assay.judges.pairs import rank_pairs

        out = rank_pairs(Judge.load(judge_dir, where), pairs, k)
        if as_json:
            typer.echo(json.dumps({key: v for key, v in out.items() if key != "details"}))
        else:
            render_pairs(out, examples, threshold)
        return
    texts = read_texts(text, file, jsonl, field)
    judge = Judge.load(judge_dir, where)
    for result in judge.score(texts):
        if as_json:
            typer.echo(json.dumps(result))
        else:
            render(result, threshold)
