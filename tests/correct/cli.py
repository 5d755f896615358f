"""Run `assay ...` in-process through the real entry point (its one-line errors and exit codes)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from assay.cli.main import main


@dataclass
class Result:
    exit_code: int
    output: str


def invoke(args: list[str]) -> Result:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(code, out.getvalue())
