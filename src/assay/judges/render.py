"""Input reading and terminal rendering for `assay score`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay.errors import AssayError, DataError
from assay.io import JSONL_MAX, TEXT_MAX, check_size, read_jsonl, read_text_file


def read_texts(text: str | None, file: Path | None, jsonl: Path | None, field: str) -> list[str]:
    """The texts to score: `text`, the whole of `file`, or `field` of every row of `jsonl` (the
    files size-checked before they are read; an empty input is an error)."""
    if text is not None:
        texts = [text]
    elif file is not None:
        texts = [read_text_file(check_size(file, TEXT_MAX, "a text to score"))]
    else:
        texts = [row[field] for row in read_jsonl(check_size(jsonl, JSONL_MAX, "a JSONL of texts to score"), field)]
        if not texts:
            raise DataError(f"{jsonl} holds no rows to score")
    for i, t in enumerate(texts):
        if not t.strip():
            raise AssayError("cannot score an empty text" + (f" (item {i + 1})" if len(texts) > 1 else ""))
    return texts


def render(result: dict[str, Any], threshold: float) -> None:
    """The text with suspicious tokens coloured (yellow from `threshold`, red from 0.8)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    header = f"score {result['score']:.3f}  ({result['n_tokens']} tokens"
    if "tokens" in result:
        flagged = sum(t["p_replaced"] >= threshold for t in result["tokens"])
        header += f", {flagged} flagged at p_replaced >= {threshold:g}"
    console.print(Text(header + ")", style="bold"))
    if "tokens" not in result:
        console.print(result["text"])
        return
    body = Text()
    for token in result["tokens"]:
        p = token["p_replaced"]
        style = "bold white on red" if p >= max(0.8, threshold) else "black on yellow" if p >= threshold else ""
        body.append(token["text"], style=style)
    console.print(body)
    console.print()


def render_pairs(out: dict[str, Any], examples: int, threshold: float) -> None:
    """The ranking shares of `rank_pairs`, then a few pairs (the real passage, then its rewrite)."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    at_least = out["min_rewritten"]
    console.print(
        f"[bold]{out['share_right']:.0%}[/] of {out['pairs']} held-out pairs ranked the right way "
        f"(rewrite above the real passage); [bold]{out['share_right_at_least']:.0%}[/] of the "
        f"{out['pairs_at_least']} with >= {at_least:.0%} rewritten"
    )
    shown = sorted(out["details"], key=lambda p: -p["rewritten"])[:: max(1, len(out["details"]) // max(examples, 1))]
    for pair in shown[:examples]:
        verdict = "right" if pair["right"] else "WRONG"
        console.print(f"\n[bold]pair {pair['index']}[/]: {pair['rewritten']:.0%} rewritten, ranked {verdict}")
        console.print("real passage:", style="dim")
        render(pair["original"], threshold)
        console.print("its rewrite:", style="dim")
        render(pair["rewrite"], threshold)
