"""What every benchmark does at the end: print its table and write its JSON result."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def report(table, result: dict, out: Path) -> None:
    from rich.console import Console

    Console(width=140).print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def choose(spec: str, known, what: str) -> list[str]:
    """The names of a comma-separated `spec`, each one of `known` (else exit with a one-line error)."""
    names = spec.split(",")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; known: {', '.join(known)}")
    return names
