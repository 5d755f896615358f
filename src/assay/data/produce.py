"""`assay data produce`: fill a stream folder with shards, with one or several worker processes.

The parent writes the tokenizer, the first validation shard and meta.json (so a consumer can
start at once), then the workers make the other shards: worker w of W takes validation and
training shards whose index is w mod W. Each worker uses one torch thread, so shards are
byte-identical whatever the number of workers, and whoever runs them: processes of this machine
(`engine="local"`) or Ray tasks anywhere in a cluster writing to one shared folder (`engine="ray"`,
docs/scale.md). A finite run (`--shards N`) ends when all N exist;
without it the producers keep the backlog full until interrupted. Re-running on the same folder
with the same config continues where it stands; a different config is refused.

What a shard holds comes from a provider class whose `kind` is the config's `stream.provider`: the
core's masked-LM shards (`providers.MaskedLMProvider`, the default) or a feature's (the judges'
`SyntheticProvider`). Worker processes receive the class by name and `build` their own.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import torch

from assay.config import to_dict, validate
from assay.data.providers import MaskedLMProvider
from assay.data.stream import list_shards, produce, read_meta, schema_of, write_meta, write_shard
from assay.data.tokenizer import load_tokenizer
from assay.errors import AssayError, ConfigError, DataError
from assay.progress import console, make_progress


def _fingerprint(cfg) -> str:
    """What determines the shards' content (not backlog, not output folder)."""
    parts = {
        "seed": cfg.run.seed,
        "data": {k: v for k, v in to_dict(cfg.data).items() if not k.startswith("stream") and k != "cache_dir"},
        "masking": to_dict(cfg.masking)["stages"],
        "stream": {k: v for k, v in to_dict(cfg.stream).items() if k != "max_backlog"},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def produce_stream(
    cfg,
    out: str | Path,
    workers: int = 1,
    shards: int | None = None,
    show: bool = True,
    should_stop=lambda: False,
    provider_class=MaskedLMProvider,
    device: str | torch.device = "cpu",
    engine: str = "local",
    ray_address: str | None = None,
) -> dict:
    """Make (or continue) the stream in `out` with `provider_class` (the one of `stream.provider`);
    returns a summary. `should_stop` ends an endless single-worker stream from another thread (the
    CLI stops with Ctrl-C instead). `device`: where a provider's model runs (the synthetic
    provider's LM; see `assay.devices`), in every worker. `engine="ray"`: the workers are Ray tasks
    (of a local instance, or of the cluster at `ray_address`), writing into `out`, which they must
    all see."""
    out = Path(out)
    if provider_class.kind != cfg.stream.provider:
        raise ConfigError(
            f"stream.provider is {cfg.stream.provider!r} but the provider given makes {provider_class.kind!r} shards"
        )
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if engine not in ("local", "ray"):
        raise ConfigError(f"unknown engine {engine!r}: use local or ray")
    if engine == "ray":
        from assay.cluster import import_ray

        import_ray()  # a missing extra is said before anything is written
    if shards is not None and shards < 1:
        raise ConfigError("--shards must be at least 1")
    fingerprint = _fingerprint(cfg)
    if (out / "meta.json").exists():
        meta = read_meta(out)
        if meta.get("fingerprint") != fingerprint or meta.get("train_shards") != shards:
            raise DataError(f"{out} holds a stream made with another config or --shards; choose a new --out")
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every worker computes with one thread: identical shards for any W
    try:
        provider, tokenizer, extra = provider_class.build(cfg, device=device)
        if not (out / "tokenizer").exists():
            tokenizer.save(out / "tokenizer")
        val = list_shards(out / "val")
        first = provider.shard("val", 0) if 0 not in val else None
        if first is not None:
            write_shard(out / "val", 0, first)
        if not (out / "meta.json").exists():
            sample = first if first is not None else provider.shard("val", 0)
            write_meta(
                out,
                {
                    "mode": cfg.stream.provider,
                    "fields": schema_of(sample),
                    "seq_len": int(sample["idx"].shape[1]),
                    "vocab_size": tokenizer.vocab_size,
                    "special_ids": tokenizer.special_ids,
                    "shard_size": cfg.stream.shard_size,
                    "seed": cfg.run.seed,
                    "train_shards": shards,
                    "val_shards": cfg.stream.val_shards,
                    "fingerprint": fingerprint,
                    "config": {
                        "data": to_dict(cfg.data),
                        "masking": to_dict(cfg.masking),
                        "stream": to_dict(cfg.stream),
                    },
                }
                | extra,
            )
        if engine == "ray":
            _run_ray(cfg, out, workers, shards, show, provider_class, str(device), ray_address)
        elif workers == 1:
            _run_worker(provider, out, 0, 1, shards, cfg.stream, show, should_stop)
        else:
            _run_pool(cfg, out, workers, shards, show, provider_class, str(device))
    finally:
        torch.set_num_threads(threads)
    n_train = len(list_shards(out / "train"))
    return {
        "out": str(out),
        "train_shards": n_train,
        "val_shards": len(list_shards(out / "val")),
        "seconds": time.perf_counter() - started,
    }


def _seqs(w: int, workers: int, shards: int | None):
    return range(w, shards, workers) if shards is not None else itertools.count(w, workers)


def _run_worker(provider, out: Path, w: int, workers: int, shards, stream_cfg, show: bool, should_stop=lambda: False):
    for v in range(w, stream_cfg.val_shards, workers):
        if v not in list_shards(out / "val"):
            write_shard(out / "val", v, provider.shard("val", v))
    with make_progress(show) as progress:
        bar = progress.add_task("produce", total=shards, completed=len(list_shards(out / "train")), info="")
        produce(
            out,
            lambda seq: provider.shard("train", seq),
            _seqs(w, workers, shards),
            stream_cfg.max_backlog,
            should_stop=should_stop,
            on_shard=lambda seq, path: progress.update(bar, advance=1, info=path.name),
            on_wait=lambda seq: progress.update(
                bar, info=f"backlog full ({stream_cfg.max_backlog} unread): waiting for a consumer"
            ),
        )


def _worker_main(
    config_class,
    cfg_tree: dict[str, Any],
    out: str,
    w: int,
    workers: int,
    shards,
    provider_class,
    device: str,
    own_signals: bool = True,
) -> None:
    """Producer w of `workers`: a process of the local pool (which leaves Ctrl-C to its parent), or
    a Ray task (`own_signals=False`: Ray handles them)."""
    if own_signals:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    torch.set_num_threads(1)
    cfg = validate(config_class, cfg_tree)
    provider, _, _ = provider_class.build(cfg, load_tokenizer(Path(out) / "tokenizer"), device=device)
    _run_worker(provider, Path(out), w, workers, shards, cfg.stream, show=False)


def _run_pool(cfg, out: Path, workers: int, shards, show: bool, provider_class, device: str) -> None:
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(type(cfg), to_dict(cfg), str(out), w, workers, shards, provider_class, device),
            daemon=True,
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        with make_progress(show) as progress:
            bar = progress.add_task(f"produce ({workers} workers)", total=shards, info="")
            while any(p.is_alive() for p in procs):
                progress.update(bar, completed=len(list_shards(out / "train")))
                time.sleep(0.2)
            progress.update(bar, completed=len(list_shards(out / "train")))
    except KeyboardInterrupt:
        console.print(f"stopping {workers} workers; {len(list_shards(out / 'train'))} train shards in {out}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, -15, None)]
    if failed:
        raise AssayError(f"{len(failed)} producer worker(s) failed (exit codes {failed}); see the messages above")


def _run_ray(
    cfg, out: Path, workers: int, shards, show: bool, provider_class, device: str, address: str | None
) -> None:
    """The producers as Ray tasks (one CPU each), in a local instance or the cluster at `address`."""
    from assay.cluster import ray_session

    with ray_session(address) as ray:
        task = ray.remote(num_cpus=1, max_retries=0)(_worker_main)
        tree = to_dict(cfg)
        pending = [
            task.remote(type(cfg), tree, str(out), w, workers, shards, provider_class, device, False)
            for w in range(workers)
        ]
        try:
            with make_progress(show) as progress:
                bar = progress.add_task(f"produce ({workers} Ray tasks)", total=shards, info="")
                while pending:
                    done, pending = ray.wait(pending, timeout=0.2)
                    for ref in done:
                        ray.get(ref)  # a task's error, raised here
                    progress.update(bar, completed=len(list_shards(out / "train")))
        except KeyboardInterrupt:
            console.print(f"stopping {workers} Ray tasks; {len(list_shards(out / 'train'))} train shards in {out}")
        except ray.exceptions.RayError as exc:
            cause = " ".join(str(getattr(exc, "cause", None) or exc).split())[:300]
            raise AssayError(f"a producer Ray task failed: {cause}") from None
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
