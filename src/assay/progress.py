"""The one progress style of assay (rich), and a console that only rank 0 uses."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False, soft_wrap=True)


def make_progress(enabled: bool = True) -> Progress:
    """Bar, n/total, elapsed, remaining and a free-text `info` field (e.g. the current loss).

    Disabled (no output at all) on non-main ranks; on a non-terminal stderr rich draws nothing
    live, so logs stay clean and the caller's own log lines carry the progress.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not enabled,
        transient=False,
    )


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True, completed: int = 0):
    """`with progress_bar(n, "scoring") as advance: advance(1, info="...")`."""
    with make_progress(enabled) as progress:
        task = progress.add_task(description, total=total, completed=completed, info="")

        def advance(step: int = 1, info: str | None = None) -> None:
            progress.update(task, advance=step, **({"info": info} if info is not None else {}))

        yield advance


def is_interactive() -> bool:
    return sys.stderr.isatty()
