"""`assay eval`: a checkpoint's validation metrics, on its own data or on other data.

    own data         the run's validation split (a corpus) or its stream's validation shards
    stream=DIR       another stream's validation shards, e.g. a judge on text it never saw; the
                     stream must hold the checkpoint's tokens (same tokenizer fingerprint)
    corpus=SPEC      another corpus's validation split (its default split: contiguous, 10%),
                     tokenised with the checkpoint's tokenizer. A language model is scored on it
                     directly; a run trained from a stream of another kind (a judge) on a temporary
                     stream made from the corpus as its own stream was made (`corpus_stream`),
                     deleted afterwards.

On other data the task hears of it (`Task.evaluating_other_data`): whatever it fits on training
data, like the judges' baseline direction, still comes from the run's own training data when that
is there. Files a task writes (a judge's calibration.png) go into `RUN/eval-on-<data>/`, never over
the run's own.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assay.config import validate
from assay.data.corpus import check_corpus_spec
from assay.data.produce import produce_stream
from assay.data.providers import MaskedLMProvider
from assay.data.stream import read_meta
from assay.data.tokenizer import load_tokenizer
from assay.data.tokens import prepare_tokens
from assay.devices import resolve_device
from assay.errors import ConfigError, DataError
from assay.io import writing
from assay.progress import console
from assay.train.checkpoint import Checkpoint
from assay.train.distributed import Dist

# the split of a corpus evaluated as other data: its own defaults, not the run's (a named split
# names the run's documents)
_SPLIT_KEYS = ("split", "val_fraction", "val_documents", "test_documents", "text_field")


def evaluate_checkpoint(
    ckpt: Checkpoint,
    blocks: int | None = None,
    elbo_points: int | None = None,
    device: str | torch.device = "cpu",
    *,
    stream: str | Path | None = None,
    corpus: str | None = None,
    providers: Mapping[str, type] | None = None,
) -> dict[str, Any]:
    """Validation loss and bits per character (for a diffusion LM: the ELBO) over `blocks`
    fixed validation blocks (None: the whole validation split), by the checkpoint's own task; on
    the run's own data, or on `stream` or `corpus` (see the module docstring). `providers` maps a
    `stream.provider` to its provider class, for the temporary stream of a judge on a corpus (the
    CLI passes its table; the core knows only the masked-LM provider). `device`: where the model
    (and a temporary stream's LM) runs, see `assay.devices`."""
    device = resolve_device(device)
    if stream is not None and corpus is not None:
        raise ConfigError("--stream and --corpus are exclusive: evaluate on one of them")
    for name, value in (("blocks", blocks), ("elbo_points", elbo_points)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, not {value}")
    cfg = ckpt.config.model_copy(deep=True)
    cfg.run.out_dir = str(ckpt.directory.parent)  # where a judge's calibration.png goes
    cfg.data.stream_timeout = 5.0  # a judge's stream must already be there: fail fast if not
    cfg.train.eval_blocks = blocks
    if elbo_points is not None:
        cfg.train.elbo_points = elbo_points
    if corpus is not None:
        check_corpus_spec(corpus)
        if needs_a_stream(ckpt):
            makers = providers or {MaskedLMProvider.kind: MaskedLMProvider}
            with corpus_stream(ckpt, corpus, makers, device) as folder:
                _on_stream(ckpt, cfg, folder, f"corpus-{Path(corpus).name}")
                return _evaluate(ckpt, cfg, device, {"corpus": corpus})
        cfg.data = _on_corpus(cfg.data, corpus)
        cfg.run.out_dir = str(ckpt.directory.parent / _label(f"eval-on-corpus-{Path(corpus).name}"))
        return _evaluate(ckpt, cfg, device, {"corpus": corpus})
    own = ckpt.config.data.stream
    if stream is not None and not (own and Path(own).resolve() == Path(stream).resolve()):
        folder = Path(stream)
        _on_stream(ckpt, cfg, folder, f"{folder.resolve().parent.name}-{folder.name}")
        return _evaluate(ckpt, cfg, device, {"stream": str(folder)})
    return _evaluate(ckpt, cfg, device, {})


def _evaluate(ckpt: Checkpoint, cfg, device: torch.device, other: dict[str, str]) -> dict[str, Any]:
    """Evaluate with `cfg` (the run's config, pointed at the data to evaluate); `other` names that
    data when it is not the run's own."""
    splits = None if cfg.data.stream else prepare_tokens(cfg.data, ckpt.tokenizer)
    model = ckpt.build_model(device)
    task = ckpt.task.create(cfg, Dist(), device, ckpt.tokenizer, splits)
    if bool(cfg.data.stream) == bool(ckpt.config.data.stream):
        task.load_eval_state(ckpt.state["task"])  # the state of a corpus task fits corpus data only
    if other:
        task.evaluating_other_data(ckpt.config)
    started = time.perf_counter()
    with writing(cfg.run.out_dir):  # a judge's calibration.png goes there
        metrics = task.evaluate(model, final=True)
    out = {
        "checkpoint": str(ckpt.directory),
        "iter": ckpt.state.get("iter"),
        "objective": cfg.objective,
        **other,
        "val_samples": task.val_size,
        **metrics,
        **{alias: metrics[key] for alias, key in task.eval_aliases.items() if key in metrics},
    }
    if other and splits is not None:
        # characters outside the vocabulary are read as [UNK], which is never masked nor scored
        out["val_unk_fraction"] = float(np.mean(np.asarray(splits.val) == ckpt.tokenizer.unk_id))
    return out | {"seconds": round(time.perf_counter() - started, 2)}


def _on_stream(ckpt: Checkpoint, cfg, folder: Path, label: str) -> None:
    """Point `cfg` at another stream, after checking that the checkpoint can read it."""
    check_stream(ckpt, folder)
    cfg.data.stream = str(folder)
    cfg.run.out_dir = str(ckpt.directory.parent / _label(f"eval-on-{label}"))


def check_stream(ckpt: Checkpoint, folder: Path) -> dict[str, Any]:
    """The meta.json of a stream the checkpoint is to be evaluated on; a one-line error if it is
    missing, holds another tokenizer's ids, or frames its samples otherwise ([CLS] first or not)."""
    if not folder.exists():
        raise DataError(f"stream {folder} does not exist")
    meta = read_meta(folder)
    tokenizer = load_tokenizer(folder / "tokenizer")
    mine = ckpt.tokenizer
    if tokenizer.fingerprint() != mine.fingerprint():
        raise DataError(
            f"{folder} holds the ids of another tokenizer ({tokenizer.kind}, {tokenizer.vocab_size} tokens) than "
            f"{ckpt.directory} ({mine.kind}, {mine.vocab_size} tokens): make the stream with the run's LM"
        )
    want = ckpt.state.get("task", {}).get("input", {}).get("cls")
    have = meta.get("config", {}).get("stream", {}).get("cls")
    if want is not None and have is not None and bool(want) != bool(have):
        framing = {True: "with [CLS] first", False: "without [CLS]"}
        raise ConfigError(
            f"{ckpt.directory} was trained on samples {framing[bool(want)]}, {folder} holds samples "
            f"{framing[bool(have)]}: set stream.cls = {str(bool(want)).lower()} when making it"
        )
    return meta


def needs_a_stream(ckpt: Checkpoint) -> bool:
    """Whether the run reads a kind of stream a corpus alone cannot stand in for: trained from a
    stream and not a language model (a language model is scored on a corpus directly)."""
    return bool(ckpt.config.data.stream) and ckpt.config.model.mode != "language_model"


@contextmanager
def corpus_stream(
    ckpt: Checkpoint, spec: str, providers: Mapping[str, type], device: str | torch.device = "cpu"
) -> Iterator[Path]:
    """A temporary stream made from corpus `spec` as the run's own stream was made: with the
    settings ([data], [masking], [stream], seed, the LM) of that stream's meta.json while it is
    there, else of the run's config. It holds the validation shards and one training shard (a
    judge learns its baseline's direction on it if the run's own stream is gone); the folder is
    deleted on exit. The stream's LM runs on `device`."""
    own = ckpt.config
    cfg = own.model_copy(deep=True)
    source = Path(own.data.stream)
    lm = own.stream.lm
    if (source / "meta.json").exists():
        meta = read_meta(source)
        made = meta.get("config", {})
        cfg.data = validate(type(cfg.data), made.get("data", cfg.data.model_dump()))
        cfg.masking = validate(type(cfg.masking), made.get("masking", cfg.masking.model_dump()))
        cfg.stream = validate(type(cfg.stream), made.get("stream", cfg.stream.model_dump()))
        cfg.run.seed = int(meta.get("seed", cfg.run.seed))
        lm = meta.get("lm") or cfg.stream.lm
        kind = meta.get("mode", cfg.stream.provider)
    else:
        kind = cfg.stream.provider
    if kind not in providers:
        raise ConfigError(f"no provider makes {kind!r} streams here (known: {', '.join(providers)})")
    if kind != "masked_lm" and (not lm or not Path(lm).exists()):
        raise DataError(
            f"the LM that made {ckpt.directory}'s stream ({lm}) is not there: cannot make a stream from {spec}"
        )
    cfg.stream.lm, cfg.stream.max_backlog, cfg.stream.provider = lm, None, kind
    with tempfile.TemporaryDirectory(prefix="assay-eval-") as tmp:
        folder = Path(tmp) / "stream"
        cfg.data = _on_corpus(cfg.data, spec, folder)
        console.print(
            f"making a temporary stream from {spec}: {cfg.stream.val_shards} validation shards of "
            f"{cfg.stream.shard_size} (deleted after the evaluation)"
        )
        produce_stream(cfg, folder, workers=1, shards=1, show=False, provider_class=providers[kind], device=device)
        yield folder


def _on_corpus(data, spec: str, stream: Path | None = None):
    """A copy of the [data] section `data` on corpus `spec`, under that corpus's default split,
    feeding `stream` (or read directly)."""
    defaults = {key: type(data).model_fields[key].default for key in _SPLIT_KEYS}
    return validate(type(data), data.model_dump() | defaults | {"corpus": spec, "stream": stream and str(stream)})


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
