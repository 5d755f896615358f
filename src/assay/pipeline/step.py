"""One pipeline step: the start-up, the LLM client, the row runner and the summary, written once.

A step (`assay synth vibes | configs | score`, `assay correct run`) declares what is its own --
its outputs, its settings, the jobs it runs (input rows -> one JSONL output each) and its per-row
function -- and `run_step` does the rest, always in this order:

    1. refuse an existing output unless resuming or overwriting (`guard_outputs`), before anything
       is written; with --overwrite, the step's extra files are removed (`Step.stale_files`)
    2. `Step.setup()` (build scorers, load a policy, read or check the inputs: what may fail on bad
       input fails here, before anything is written)
    3. open one LLM client (when the step has LLM settings); for a step whose requests carry a JSON
       Schema, find the structured-output mode the endpoint takes (`Step.sends_schema`); write
       `run_config.json`: the step's non-secret settings (and that mode)
    4. `Step.start()`, and run every job through the row runner (`runner.arun_rows`: concurrency,
       resume, errors file, error-rate monitor, early stop on repeated permanent errors, progress)
    5. close the client and the step's resources, then `Step.finish()` builds the summary, which
       gets the runner's figures per job and the LLM usage of this run

With `runner.engine = "ray"` step 4 runs in a pool of Ray actors instead (`ray_engine.py`): each
gets a copy of the step after `setup()` (less its `not_shipped` attributes), opens its own client
and calls `start()`; the rows come back to this process, which writes them exactly as the local
runner does (`runner.RowSink`), so `written()`, `close()` and `finish()` run here either way.

    class Vibes(Step):
        name = "vibes"
        def jobs(self): return [Job(rows, self.out_dir / "_progress.jsonl", "vibes")]
        async def process(self, row): ... self.client.complete_json(...) ...

    summary = run_step(Vibes(out_dir, runner_settings, llm_settings, ...))
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from assay.errors import ConfigError, DataError
from assay.io import JSONL_MAX, atomic_write_text, check_size, jsonl_rows, read_jsonl, writing
from assay.pipeline.runner import RunnerSettings, RunStats, arun_rows, guard_outputs
from assay.pipeline.usage import usage_delta
from assay.tracking import check_backend, open_tracker


@dataclass
class Job:
    """Input rows (each with a `row_id`) -> one JSONL output file; `description` names the progress bar."""

    rows: Iterable[dict[str, Any]]
    out: Path
    description: str


class Step:
    """The parts of a pipeline step that are its own; see the module docstring for the order."""

    name: ClassVar[str]
    # Attributes a Ray actor does not need (the driver's input rows) or builds itself in `start()`
    # (scorers with models): left out of the copy of the step sent to each actor.
    not_shipped: ClassVar[tuple[str, ...]] = ()

    def __init__(self, out_dir: str | Path, runner: RunnerSettings, llm=None):
        self.out_dir = Path(out_dir)
        self.runner = runner
        self.llm = llm  # LLMSettings: the step gets a client (self.client) built from them
        self.client = None

    # -- declared by the step -------------------------------------------------------------------
    def outputs(self) -> list[Path]:
        """The files the step appends to (refused if they exist, unless resuming or overwriting)."""
        raise NotImplementedError

    def stale_files(self) -> list[Path]:
        """Other files of an earlier run that --overwrite removes (summaries, states)."""
        return []

    def settings(self) -> dict[str, Any]:
        """The step's own config sections, for run_config.json (the LLM and runner ones are added)."""
        return {}

    def run_info(self) -> dict[str, Any]:
        """More top-level fields of run_config.json (inputs, run tags)."""
        return {}

    def setup(self) -> None:
        """After the guard, before run_config.json: build what the rows need."""

    def sends_schema(self) -> bool:
        """True when the step's requests carry a JSON Schema: the structured-output mode in use is
        found before the rows (`LLMClient.resolve_structured_mode`) and reported in run_config.json
        and the summary."""
        return False

    def jobs(self) -> list[Job]:
        raise NotImplementedError

    def start(self) -> None:
        """In the process that runs the rows, once `self.client` is open: here after `setup()`, under
        Ray in each actor (on a copy of the step without its `not_shipped` attributes)."""

    def clients(self) -> list[Any]:
        """The LLM clients the rows use: the step's own, and any its parts opened (a judging
        scorer's). Under Ray each actor makes their caches durable after every batch."""
        return [self.client] if self.client is not None else []

    def refresh(self) -> None:
        """Under Ray, in each actor before each batch of rows (e.g. to read the policy the driver has
        learned since); nothing locally."""

    async def process(self, row: dict[str, Any]) -> dict[str, Any]:
        """The per-row function: one input row -> one output row."""
        raise NotImplementedError

    def written(self, result: dict[str, Any]) -> None:
        """Called once a result row is written and flushed (e.g. to learn only from rows on disk)."""

    async def close(self) -> None:
        """Release the step's own resources (always called, also after a failure)."""

    def finish(self, stats: dict[str, RunStats]) -> dict[str, Any]:
        """The summary, from the runner's figures per job (keyed by description)."""
        return {"run": {name: s.to_dict() for name, s in stats.items()}}

    def ray_cpus(self) -> float:
        """CPUs a Ray actor of this step reserves when `runner.ray_cpus` is not set: a quarter for
        a step that mostly waits on a remote LLM, one for a step that computes (scorers, or a local
        model that each actor loads and runs)."""
        if self.llm is None:
            return 1.0
        from assay.llm.settings import backend_kind

        return 1.0 if backend_kind(self.llm.model, self.llm.api_base) == "local" else 0.25

    def __getstate__(self) -> dict[str, Any]:
        """The copy a Ray actor gets: no client (each actor opens its own), `not_shipped` set to None."""
        return self.__dict__ | dict.fromkeys(("client", *self.not_shipped))


class SplitFilesStep(Step):
    """A step over the split files the previous step wrote: `input_dir/<split>.jsonl` -> the same
    name in `out_dir`, one job per split (`assay synth configs`, `assay synth score`)."""

    made_by: ClassVar[str]  # the command that makes the input files (named when one is missing)

    def __init__(self, input_dir: str | Path, out_dir: str | Path, splits: list[str], runner: RunnerSettings, llm=None):
        super().__init__(out_dir, runner, llm)
        self.input_dir = Path(input_dir)
        self.files = split_files(input_dir, splits, self.made_by)

    def outputs(self) -> list[Path]:
        return [self.out_dir / p.name for p in self.files]

    def setup(self) -> None:
        """Check every input row before anything is written (the jobs read the files again, row by row)."""
        if not sum(check_input(p, self.made_by) for p in self.files):
            raise DataError(f"the split files hold no rows: {', '.join(map(str, self.files))}")

    def run_info(self) -> dict[str, Any]:
        return {"input_dir": str(self.input_dir)}

    def jobs(self) -> list[Job]:
        return [Job(read_jsonl(p), self.out_dir / p.name, f"{self.name} {p.stem}") for p in self.files]

    def split_stats(self, stats: dict[str, RunStats]) -> dict[str, Any]:
        """The runner's figures per split."""
        return {job.removeprefix(f"{self.name} "): s.to_dict() for job, s in stats.items()}


def run_step(step: Step) -> dict[str, Any]:
    """Run a step with its own event loop and LLM client; returns its summary."""
    return asyncio.run(arun_step(step))


async def arun_step(step: Step, client=None) -> dict[str, Any]:
    """Run a step in a running event loop. `client`: an open LLM client to share (e.g. between the
    policies of `assay correct compare`); the usage the summary reports is then this step's part."""
    ray = step.runner.engine == "ray"
    if ray and client is not None:
        raise ConfigError(f"{step.name}: the ray engine runs one step on its own: use runner.engine = local here")
    if ray:
        from assay.cluster import import_ray

        import_ray()  # a missing extra is said before anything is written
    check_backend(step.runner.tracking)  # likewise a missing tracker
    guard_outputs(step.outputs(), step.runner)
    if step.runner.overwrite and not step.runner.resume:
        for path in step.stale_files():
            path.unlink(missing_ok=True)
    step.setup()
    sections = step.settings()
    if step.llm is not None:
        sections["llm"] = step.llm.public_dict()
    sections["runner"] = step.runner.model_dump()
    own = client is None and step.llm is not None
    if own:
        from assay.llm.client import LLMClient

        client = LLMClient(step.llm)
    try:
        if client is not None and step.sends_schema():
            # (before any row: an endpoint that takes no structured mode at all fails here, once)
            sections["llm"]["structured_mode"] = await client.resolve_structured_mode()
        write_run_config(step.out_dir, step.name, sections, step.run_info())
        if ray:
            if own:  # each actor opens its own client (and finds the mode in the shared cache)
                await client.aclose()
                own, client = False, None
            return await _run_ray(step, sections)
        step.client = client
        step.start()
        before = client.usage.summary() if client is not None else None
        stats: dict[str, RunStats] = {}
        try:
            for job in step.jobs():
                stats[job.description] = await arun_rows(
                    job.rows, step.process, job.out, step.runner, job.description, on_written=step.written
                )
        finally:
            await step.close()
    finally:
        if own:
            await client.aclose()
    summary = step.finish(stats)
    if client is not None:
        summary["usage"] = usage_delta(before, client.usage.summary())
        if step.sends_schema():
            summary["structured_mode"] = client.known_mode()
    track_summary(step, sections, summary)
    return summary


async def _run_ray(step: Step, sections: dict[str, Any]) -> dict[str, Any]:
    from assay.pipeline.ray_engine import run_jobs

    try:
        stats, usage = run_jobs(step)
    finally:
        await step.close()
    summary = step.finish(stats)
    if usage is not None:
        summary["usage"] = usage
    if "structured_mode" in sections.get("llm", {}):
        summary["structured_mode"] = sections["llm"]["structured_mode"]
    track_summary(step, sections, summary)
    return summary


def track_summary(step: Step, sections: dict[str, Any], summary: dict[str, Any]) -> None:
    """The run's summary (rows, errors, scores, usage and cost) to the tracker of the command's [log]
    section, with the step's settings as the run's config; a resumed run continues its tracker run."""
    settings = step.runner.tracking
    if settings is None or settings.backend == "none":
        return
    config = {"step": step.name, **sections, "log": settings.model_dump()}
    tracker = open_tracker(settings, step.out_dir, config, resume_step=0 if step.runner.resume else None)
    try:
        tracker.summary(summary)
    finally:
        tracker.close()


def split_files(input_dir: str | Path, splits: list[str], made_by: str) -> list[Path]:
    """`input_dir/<split>.jsonl` for each split, or one DataError naming every missing file."""
    files = [Path(input_dir) / f"{name}.jsonl" for name in splits]
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise DataError(f"missing split file(s) {', '.join(missing)} (made by `{made_by}`)")
    return files


def check_input(path: Path, made_by: str) -> int:
    """The number of rows of an input JSONL file, once all of them are checked: size, UTF-8, a JSON
    object with a row_id per line (a one-line DataError naming the line otherwise)."""
    check_size(path, JSONL_MAX, "a JSONL input")
    rows = 0
    for lineno, row in jsonl_rows(path):
        if "row_id" not in row:
            raise DataError(f"{path} line {lineno} has no row_id (made by `{made_by}`?)")
        rows += 1
    return rows


def write_run_config(
    out_dir: str | Path, step: str, config: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    """`run_config.json`: the non-secret settings of a step (its sections, the LLM's, the runner's)."""
    from assay.version import __version__

    path = Path(out_dir) / "run_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"step": step, "assay_version": __version__, "config": config} | (extra or {})
    text = json.dumps(payload, indent=2) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8", errors="replace") == text:
        return  # a resumed run with the same settings: leave the file as it is
    with writing(path):
        atomic_write_text(path, text)
