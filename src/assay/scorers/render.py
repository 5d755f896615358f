"""Input reading and terminal rendering for `assay score`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assay.errors import AssayError


def read_texts(text: str | None, file: Path | None, jsonl: Path | None, field: str) -> list[str]:
    if text is not None:
        texts = [text]
    elif file is not None:
        texts = [_read_utf8(file)]
    else:
        texts = []
        for lineno, line in enumerate(_read_utf8(jsonl).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AssayError(f"{jsonl} line {lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get(field), str):
                raise AssayError(f"{jsonl} line {lineno} has no string field {field!r}")
            texts.append(row[field])
    for i, t in enumerate(texts):
        if not t.strip():
            raise AssayError("cannot score an empty text" + (f" (item {i + 1})" if len(texts) > 1 else ""))
    return texts


def _read_utf8(path: Path) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise AssayError(f"file not found: {path}") from None
    if b"\0" in data:
        raise AssayError(f"{path} is not text (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssayError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


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
