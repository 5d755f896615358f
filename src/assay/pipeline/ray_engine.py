"""The Ray engine of a pipeline step (`--engine ray`, `runner.engine = "ray"`; docs/scale.md).

The same rows, written the same way as the local runner, processed by a pool of Ray Data actors:

    driver (this process)                              actors (ActorPoolStrategy, runner.ray_actors)
    plan_rows: guard, skip written ids, --limit        StepWorker: a copy of the step (after setup,
    rows to do -> OUT/.ray/<job>-<block>.jsonl             less `not_shipped`), its own LLM client
    read_text -> map_batches(StepWorker)  ----------->   (cache, max_qps / actors), step.start()
                                                       per batch: step.refresh(), then process() on
    iter_rows, in input order (preserve_order)           each row, `runner.concurrency` in flight,
    RowSink: append the row | the errors file,  <-----   an error caught per row; the client's usage
      monitor, progress, step.written()                  since the last batch

So resume, the errors file, the error-rate monitor and `Step.written` (a policy learning from the
traces written) are the local runner's own code, and a driver killed at any moment leaves whole
rows only: `--resume` skips them and does the rest. The output rows come in input order (the local
runner writes them as they finish).

The rows travel as JSON text (`read_text`), not through `read_json`: Arrow would infer one schema
for all rows, turning a key missing from some rows into null and ints next to floats into floats,
so a step would see other rows than the local runner gives it.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from assay.errors import AssayError
from assay.io import atomic_write_text
from assay.pipeline.runner import RowSink, RunStats, error_text, permanence, plan_rows
from assay.pipeline.usage import usage_delta, usage_sum


def run_jobs(step: Any) -> tuple[dict[str, RunStats], dict[str, Any] | None]:
    """Every job of `step` on one Ray actor pool (of a local instance, or of `runner.ray_address`);
    returns the runner's figures per job and the LLM usage of all actors together (None without a
    client)."""
    from assay.cluster import ray_session

    runner = step.runner
    if step.llm is not None:
        from assay.llm.client import LLMClient

        LLMClient(step.llm).close()  # a missing API key or a bad cache path fails here, not in an actor
    jobs = step.jobs()
    plans = [plan_rows(job.rows, job.out, runner, job.description) for job in jobs]
    stats = {job.description: job_stats for job, (_, job_stats) in zip(jobs, plans, strict=True)}
    usage: dict[str, Any] | None = None
    folder = step.out_dir / ".ray"
    with ray_session(runner.ray_address) as ray, ExitStack() as cleanup:
        cleanup.callback(_remove, folder)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows come back in input order, job by job
        results = _dataset(ray, step, [todo for todo, _ in plans], folder)
        sinks, current, sink = ExitStack(), -1, None

        def reach(index: int) -> None:
            """The jobs before `index` are done: close their sinks (an empty one for a job with
            nothing to do) and open job `index`'s."""
            nonlocal current, sink
            sinks.close()
            for j in range(current + 1, min(index, len(jobs) - 1) + 1):
                job = jobs[j]
                sink = sinks.enter_context(
                    RowSink(job.out, runner, stats[job.description], job.description, step.written)
                )
                if j < index:
                    sinks.close()
            current = index

        try:
            with sinks:
                for row in results.iter_rows() if results is not None else ():
                    if row["usage"]:
                        usage = usage_sum(usage, json.loads(row["usage"]))
                    if row["job"] != current:
                        reach(row["job"])
                    if row["ok"]:
                        sink.written(row["row_id"], json.loads(row["line"]), row["line"])
                    else:
                        sink.failed(row["row_id"], row["error"], row["permanent"], row["fix"] or None)
                reach(len(jobs))
        except (AssayError, KeyboardInterrupt):
            raise
        except Exception as exc:  # an actor that could not start or died: Ray's error, in one line
            job = jobs[max(current, 0)]
            written = stats[job.description].written
            raise AssayError(
                f"{job.description}: the Ray engine stopped: {_ray_cause(exc)} "
                f"({written} rows written to {job.out}, resumable with --resume)"
            ) from None
    return stats, usage


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _dataset(ray: Any, step: Any, todos: list[list[dict[str, Any]]], folder: Path):
    """The rows to do of every job as one Ray Dataset, mapped by the actor pool (None: nothing to
    do). They are read from files in the output folder, which a cluster's workers see as the driver
    does (docs/scale.md): one file per block, named by job and block so that they are read in order
    and each result says its job, and so that even a few rows reach every actor."""
    runner = step.runner
    total = sum(map(len, todos))
    if not total:
        return None
    batch = runner.ray_batch_size or 2 * runner.concurrency
    batch = max(1, min(batch, math.ceil(total / runner.ray_actors)))
    _remove(folder)  # a killed run's
    folder.mkdir(parents=True)
    paths = []
    for job, todo in enumerate(todos):
        for start in range(0, len(todo), batch):
            paths.append(folder / f"{job:04d}-{start // batch:06d}.jsonl")
            lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in todo[start : start + batch])
            atomic_write_text(paths[-1], "".join(lines))
    # Reading lines is light work: one task at a time that reserves no CPU, so actors that reserve
    # them all (two scorers on two cores) cannot starve the read that feeds them, and no crowd of
    # zero-CPU readers (each a worker process) starts.
    return ray.data.read_text(
        [str(p) for p in paths], num_cpus=0, concurrency=1, override_num_blocks=len(paths), include_paths=True
    ).map_batches(
        StepWorker,
        fn_constructor_args=(step, runner.ray_actors),
        batch_size=batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(runner.ray_actors, len(paths))),  # no idle actors
        num_cpus=runner.ray_cpus or step.ray_cpus(),
    )


def _ray_cause(exc: BaseException) -> str:
    """The innermost message of a Ray error (they wrap the actor's exception and its traceback)."""
    cause: BaseException | None = exc
    while cause is not None and (cause.__cause__ is not None or getattr(cause, "cause", None) is not None):
        inner = getattr(cause, "cause", None) or cause.__cause__
        if inner is cause:
            break
        cause = inner
    text = str(cause or exc).strip().splitlines()
    line = next((t for t in reversed(text) if t.strip() and not t.startswith(" ")), type(exc).__name__)
    return " ".join(line.split())[:300]


class StepWorker:
    """One Ray actor: a copy of the step with its own event loop and LLM client; a batch of input
    rows (JSON text) -> the same number of results: `ok`, the output row as JSON text (`line`) or
    the one-line `error`, and in the first row the client's usage since the previous batch."""

    def __init__(self, step: Any, actors: int):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.step = step
        self.client = None
        if step.llm is not None:
            from assay.llm.client import LLMClient

            llm = step.llm
            if llm.max_qps:  # the run's rate limit, shared by the actors
                llm = llm.model_copy(update={"max_qps": llm.max_qps / actors})
            self.client = LLMClient(llm)
        step.client = self.client
        step.start()
        self.usage = self.client.usage.summary() if self.client is not None else None

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        self.step.refresh()
        rows = [json.loads(text) for text in batch["text"]]
        results = self.loop.run_until_complete(self._process(rows))
        columns = ("job", "row_id", "ok", "line", "error", "permanent", "fix", "usage")
        out: dict[str, list] = {name: [] for name in columns}
        for path, row, (ok, value) in zip(batch["path"], rows, results, strict=True):
            out["job"].append(int(Path(str(path)).name.split("-")[0]))
            out["row_id"].append(str(row["row_id"]))
            out["ok"].append(ok)
            if ok:  # the line the local runner would write: the row with its row_id
                value.setdefault("row_id", str(row["row_id"]))
            out["line"].append(json.dumps(value, ensure_ascii=False) if ok else "")
            out["error"].append("" if ok else error_text(value))
            permanent, fix = (False, None) if ok else permanence(value)
            out["permanent"].append(permanent)
            out["fix"].append(fix or "")
            out["usage"].append("")
        for client in self.step.clients():
            if client.cache is not None:
                client.cache.flush()  # the answers are on disk before their rows are reported
        if self.client is not None:
            now = self.client.usage.summary()
            out["usage"][0] = json.dumps(usage_delta(self.usage, now))
            self.usage = now
        return out

    async def _process(self, rows: list[dict[str, Any]]) -> list[tuple[bool, Any]]:
        gate = asyncio.Semaphore(self.step.runner.concurrency)

        async def one(row: dict[str, Any]) -> tuple[bool, Any]:
            async with gate:
                try:
                    return True, await self.step.process(row)
                except Exception as exc:  # a row's failure is the row's, as in the local runner
                    return False, exc

        return await asyncio.gather(*(one(row) for row in rows))
