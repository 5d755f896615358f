"""The row runner of every pipeline step (step.py): JSONL in, JSONL out, row by row.

    stats = run_rows(rows, process, out_path, RunnerSettings(resume=True), description="vibes")

- Every input row has a stable id (`row_id`); `process(row)` returns the output row (which keeps
  `row_id`) and the runner appends it to `out_path` as one line, flushed as soon as it is done.
- `resume=True` reads the ids already in `out_path` and skips those rows, so a killed run loses
  nothing and duplicates nothing. A line torn by the kill (no final newline or not JSON) is cut
  off first. Without `resume`, an existing non-empty output is an error, never overwritten
  silently (`overwrite=True` starts afresh).
- Rows that fail are written to `<out>.errors.jsonl` (id and one-line error) and not to the
  output, so a resumed run tries them again.
- A row is appended whole or not at all: a write that fails (a full disk) is cut off again, and
  the run stops with one error naming the file; the rows before it stay, resumable.
- An error-rate monitor (EWMA over finished rows) aborts cleanly above `max_error_rate`: rows in
  flight are cancelled, everything already written stays.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from assay.config import Section
from assay.errors import AssayError, DataError
from assay.io import is_disk_full, read_jsonl
from assay.progress import progress_bar
from assay.tracking import TrackingSettings


class PipelineAborted(AssayError):
    """Too many rows failed: the run stopped; what was written is intact and resumable."""


class RunnerSettings(Section):
    limit: int | None = Field(
        None, ge=1, description="Process at most this many input rows (after skipping done ones)."
    )
    resume: bool = Field(False, description="Skip rows whose id is already in the output.")
    overwrite: bool = Field(False, description="Start afresh even if the output exists.")
    concurrency: int = Field(8, ge=1, description="Rows in flight at once.")
    max_error_rate: float = Field(0.25, gt=0, le=1, description="Abort when the EWMA error rate exceeds this.")
    ewma_alpha: float = Field(0.1, gt=0, le=1, description="Weight of the newest row in the error-rate EWMA.")
    min_rows: int = Field(8, ge=1, description="Rows finished before the monitor may abort.")
    stop_after_permanent: int = Field(
        3,
        ge=0,
        description="Stop when this many rows in a row fail with the same permanent error (a request the "
        "endpoint rejects, an unknown model, a bad key), which no retry can fix; 0: never.",
    )
    progress: bool = True
    engine: Literal["local", "ray"] = Field(
        "local",
        description="local: asyncio on this machine; ray: a pool of Ray Data actors (pip install 'assay[ray]'; "
        "docs/scale.md). The same output files either way.",
    )
    ray_address: str | None = Field(
        None, description="The Ray cluster to join (auto, or ray://HOST:10001); None: start a local instance."
    )
    ray_actors: int = Field(2, ge=1, description="Ray actors; each holds its own LLM client, cache and scorers.")
    ray_cpus: float | None = Field(
        None, gt=0, description="CPUs reserved per Ray actor; None: 0.25 for LLM-bound steps, 1 for the others."
    )
    ray_batch_size: int | None = Field(
        None, ge=1, description="Rows per batch handed to a Ray actor; None: twice `concurrency`."
    )
    # the command's [log] section (assay.tracking), handed over by its config tree; not a runner key
    tracking: TrackingSettings | None = Field(None, exclude=True)


@dataclass
class RunStats:
    total: int = 0  # input rows considered (after --limit)
    skipped: int = 0  # already in the output (resume)
    written: int = 0
    failed: int = 0
    error_rate: float = 0.0  # the EWMA at the end
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # first few messages

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {"first_errors": self.errors[:5]}


class ErrorRateMonitor:
    """EWMA of row failures; `update` returns True when the run should abort."""

    def __init__(self, threshold: float, alpha: float, min_rows: int):
        self.threshold, self.alpha, self.min_rows = threshold, alpha, min_rows
        self.rate, self.seen = 0.0, 0

    def update(self, failed: bool) -> bool:
        self.seen += 1
        # Start at the plain mean so the first rows are not under-weighted by the zero prior.
        alpha = max(self.alpha, 1.0 / self.seen)
        self.rate = (1 - alpha) * self.rate + alpha * float(failed)
        return self.seen >= self.min_rows and self.rate > self.threshold


def completed_ids(out_path: Path) -> set[str]:
    """Ids already in an output file, after cutting off a line torn by a kill."""
    if not out_path.exists():
        return set()
    _truncate_torn_tail(out_path)
    return {str(row["row_id"]) for row in read_jsonl(out_path) if "row_id" in row}


def _truncate_torn_tail(path: Path) -> None:
    data = path.read_bytes()
    if not data:
        return
    keep = len(data)
    if not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1  # 0 when the only line is torn
    else:
        last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
        try:
            json.loads(data[last_start:])
        except ValueError:
            keep = last_start
    if keep != len(data):
        with path.open("r+b") as f:
            f.truncate(keep)


def run_rows(
    rows: Iterable[dict[str, Any]],
    process: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    out_path: str | Path,
    settings: RunnerSettings,
    description: str = "rows",
) -> RunStats:
    """Run `process` over `rows` (each with a `row_id`) and append results to `out_path`."""
    return asyncio.run(arun_rows(rows, process, out_path, settings, description))


async def arun_rows(
    rows: Iterable[dict[str, Any]],
    process: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    out_path: str | Path,
    settings: RunnerSettings,
    description: str = "rows",
    on_written: Callable[[dict[str, Any]], None] | None = None,
) -> RunStats:
    """`run_rows` in a running event loop. `on_written(result)` runs after each result is written
    and flushed (e.g. to apply what a row taught only once the row is safely on disk)."""
    todo, stats = plan_rows(rows, out_path, settings, description)
    queue = iter(todo)
    with RowSink(Path(out_path), settings, stats, description, on_written) as sink:
        pending: dict[asyncio.Task, str] = {}

        def launch() -> None:
            while len(pending) < settings.concurrency:
                row = next(queue, None)
                if row is None:
                    return
                pending[asyncio.ensure_future(process(row))] = str(row["row_id"])

        launch()
        try:
            while pending:
                finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    rid = pending.pop(task)
                    if task.exception() is not None:
                        exc = task.exception()
                        sink.failed(rid, error_text(exc), *permanence(exc))
                    else:
                        sink.written(rid, task.result())
                launch()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
    return stats


def plan_rows(
    rows: Iterable[dict[str, Any]], out_path: str | Path, settings: RunnerSettings, description: str
) -> tuple[list[dict[str, Any]], RunStats]:
    """The rows a run still has to do, in input order: the guard against an existing output, the
    --overwrite clean-up, the ids already written skipped (--resume), at most --limit rows. Every
    input row needs a `row_id`, unique in the input."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    guard_outputs([out_path], settings)
    if settings.overwrite and not settings.resume:
        out_path.unlink(missing_ok=True)
        errors_file(out_path).unlink(missing_ok=True)
    done = completed_ids(out_path) if settings.resume else set()

    stats = RunStats()
    todo: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        if "row_id" not in row:
            raise DataError(f"{description}: an input row has no row_id")
        rid = str(row["row_id"])
        if rid in seen:
            raise DataError(f"{description}: duplicate row_id {rid!r} in the input")
        seen.add(rid)
        if rid in done:
            stats.skipped += 1
            continue
        todo.append(row)
        if settings.limit is not None and len(todo) >= settings.limit:
            break
    stats.total = len(todo)
    return todo, stats


def errors_file(out_path: Path) -> Path:
    """Where the rows of `out_path` that failed are listed: `<out>.errors.jsonl`."""
    return out_path.with_name(out_path.stem + ".errors.jsonl")


def error_text(exc: BaseException) -> str:
    """A row's error as one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def permanence(exc: BaseException) -> tuple[bool, str | None]:
    """(permanent, fix) of a row's error: see AssayError."""
    if isinstance(exc, AssayError):
        return bool(exc.permanent), exc.fix
    return False, None


class RowSink:
    """Where the finished rows of a run go, whatever ran them (the asyncio runner here, the Ray
    engine's actors): a result is appended to the output whole and flushed, then `on_written(result)`;
    a failure goes to the errors file; both feed the error-rate monitor and the progress bar, and
    `PipelineAborted` is raised when the monitor says so. Closing fsyncs the output."""

    def __init__(
        self,
        out_path: Path,
        settings: RunnerSettings,
        stats: RunStats,
        description: str,
        on_written: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.out_path, self.settings, self.stats, self.description = out_path, settings, stats, description
        self.errors_path = errors_file(out_path)
        self.on_written = on_written
        self.monitor = ErrorRateMonitor(settings.max_error_rate, settings.ewma_alpha, settings.min_rows)
        self._streak: tuple[str | None, int] = (None, 0)  # (permanent error, rows in a row with it)

    def __enter__(self) -> RowSink:
        self.start = time.perf_counter()
        self._stack = ExitStack()
        self.out = self._stack.enter_context(open(self.out_path, "ab", buffering=0))  # one write per row, unbuffered
        self._stack.callback(lambda: os.fsync(self.out.fileno()))
        self.advance = self._stack.enter_context(
            progress_bar(self.stats.total, self.description, enabled=self.settings.progress)
        )
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._stack.__exit__(*exc)
        finally:
            self.stats.error_rate = self.monitor.rate
            self.stats.seconds = time.perf_counter() - self.start

    def written(self, rid: str, result: dict[str, Any], line: str | None = None) -> None:
        """Append a finished row. `line`: the row already as its JSON line (with its row_id), as a
        Ray actor sends it, so that the one writing process does not serialise it again."""
        result.setdefault("row_id", rid)
        append_line(self.out, line if line is not None else json.dumps(result, ensure_ascii=False), self.out_path)
        self.stats.written += 1
        self._streak = (None, 0)
        if self.on_written is not None:
            self.on_written(result)
        self._count(False)

    def failed(self, rid: str, message: str, permanent: bool = False, fix: str | None = None) -> None:
        """Record a failed row. `permanent` (see AssayError): after `stop_after_permanent` rows in a
        row with the same such error the run stops, with `fix` in its one-line error."""
        self.stats.failed += 1
        self.stats.errors.append(f"{rid}: {message}")
        with open(self.errors_path, "ab", buffering=0) as ef:
            append_line(ef, json.dumps({"row_id": rid, "error": message}), self.errors_path)
        same = message if permanent else None  # (identical: a prompt too long for the context differs per row)
        count = self._streak[1] + 1 if same is not None and same == self._streak[0] else int(same is not None)
        self._streak = (same, count)
        limit = self.settings.stop_after_permanent
        if limit and count >= limit:
            self.advance(1, info=f"{self.stats.failed} failed")
            head = f"{fix}. Stopped" if fix else "stopped"
            raise PipelineAborted(
                f"{self.description}: {head} after {count} rows in a row failed with the same error, which "
                f"no retry can fix: {message} ({self.stats.written} rows written to {self.out_path}, resumable "
                "with --resume)"
            )
        self._count(True)

    def _count(self, failed: bool) -> None:
        monitor, stats = self.monitor, self.stats
        abort = monitor.update(failed)
        self.advance(1, info=f"{stats.failed} failed, err {monitor.rate:.2f}")
        if abort:
            raise PipelineAborted(
                f"{self.description}: error rate {monitor.rate:.2f} > {self.settings.max_error_rate} after "
                f"{monitor.seen} rows ({stats.written} written to {self.out_path}, resumable with --resume); "
                f"last error: {stats.errors[-1]}"
            )


def append_line(f, line: str, path: Path) -> None:
    """Append `line` and a newline to the unbuffered binary file `f`, whole or not at all: after a
    failed write (a full disk) the file is cut back to where it ended, so it never holds a torn row."""
    data = memoryview((line + "\n").encode("utf-8"))
    end = f.seek(0, os.SEEK_END)
    try:
        while data:
            data = data[f.write(data) :]
    except OSError as exc:
        f.truncate(end)
        if is_disk_full(exc):
            raise DataError(f"disk full or file too large: {path}") from None
        raise


def guard_outputs(paths: list[Path], settings: RunnerSettings) -> None:
    """Refuse to touch an existing output (or its run_config.json) unless resuming or overwriting."""
    if settings.resume or settings.overwrite:
        return
    for path in paths:
        if path.exists() and path.stat().st_size > 0:
            raise AssayError(f"{path} already exists: pass --resume to continue it or --overwrite to start afresh")
