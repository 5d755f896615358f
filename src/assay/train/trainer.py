"""The training loop: one loop for every objective; a task (assay.train.task) supplies the model,
the batches, the loss and the validation.

Resume is exact: a checkpoint holds the model, AdamW moments, the iteration, the data cursor,
the curriculum and every RNG (torch's global one, which drives dropout, and the task's
generators, per rank), so a run stopped at iteration k and resumed logs the same losses as one
that never stopped.

Reliability (docs/reliability.md): a run folder has one writer at a time (`assay.io.folder_lock`);
a folder that holds a run is continued (`resume`) or replaced (`overwrite`), never overwritten
silently; Ctrl-C and SIGTERM (preemption, torchrun shutdown) finish the step and save `last/`; a
non-finite loss stops the run before the optimizer step, with `last/` and `best/` as they were.
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from assay.checkpoint_io import resolve_checkpoint
from assay.config import apply_override, to_dict, validate
from assay.data.stream import wait_for_stream
from assay.data.tokenizer import load_tokenizer
from assay.data.tokens import prepare_tokens
from assay.devices import resolve_device
from assay.errors import AssayError, ConfigError, DataError
from assay.io import atomic_write_json, folder_lock, remove_entries, remove_temp_directories, write_directory
from assay.progress import console, make_progress
from assay.rng import stable_seed
from assay.tracking import RUN_FILES as TRACKER_FILES
from assay.tracking import check_backend, open_tracker
from assay.train.checkpoint import Checkpoint, init_from_checkpoint, save_checkpoint
from assay.train.config import TrainingConfig
from assay.train.distributed import Dist
from assay.train.ema import EMA
from assay.train.lm_tasks import CORE_TASKS
from assay.train.metrics import MetricsLog, plot_loss_curve
from assay.train.optim import add_trainable, build_optimizer, lr_at
from assay.train.parallel import parallel_for
from assay.train.task import TaskTable, task_for


@dataclass
class TrainResult:
    out_dir: Path
    iters: int
    final: dict[str, Any]
    interrupted: bool
    seconds: float
    rank: int = 0  # under torchrun, only rank 0 reports


def config_for_resume(ckpt: Checkpoint, out_dir: str | Path, overrides: list[str]) -> TrainingConfig:
    """The checkpoint's config with `--set` overrides; what defines the model and data is fixed."""
    tree = to_dict(ckpt.config)
    for assignment in overrides:
        apply_override(tree, assignment)
    tree["run"]["out_dir"] = str(out_dir)
    cfg = validate(type(ckpt.config), tree)
    before = to_dict(ckpt.config)
    for section in ("model", "data"):
        for key, value in to_dict(cfg)[section].items():
            if before[section][key] != value:
                raise ConfigError(f"cannot change {section}.{key} when resuming (it defines the model or its data)")
    if to_dict(cfg)["masking"]["stages"] != before["masking"]["stages"] or cfg.run.seed != ckpt.config.run.seed:
        raise ConfigError("cannot change masking.stages or run.seed when resuming")
    return cfg


RUN_FILES = ("best", "last", "best.old", "last.old", "metrics.jsonl", "eval.json", "loss.png", "config.json")
RUN_FILES += TRACKER_FILES


class NonFiniteLossError(AssayError):
    """The loss (or the gradient norm) became NaN or infinite; the run stopped before stepping."""


def train(
    cfg: TrainingConfig, resume: Checkpoint | None = None, tasks: TaskTable = CORE_TASKS, overwrite: bool = False
) -> TrainResult:
    """Train `cfg` (or continue `resume`, a checkpoint of the same run). `tasks` is the task table
    the config's objective is looked up in. A run.out_dir that already holds a run is refused
    unless `resume`s it or `overwrite` is set (its checkpoints and logs are then removed first)."""
    device_type = resolve_device(cfg.run.device).type
    dist = Dist.from_env(device_type)
    trainer = Trainer(cfg, dist, resume, tasks, overwrite)
    result = trainer.run()
    # The DDP wrapper holds the process group: release it before destroying the group, or gloo's
    # threads die at interpreter exit and abort the process. Only a clean exit destroys the group
    # (destroying while another rank is still in a collective can hang).
    del trainer
    gc.collect()
    dist.close()
    return result


def _last_iter(run: Path) -> int | str | None:
    """The iteration of `run`'s last checkpoint (for messages): None if it has none, "?" if unreadable."""
    try:
        checkpoint = resolve_checkpoint(run, "last")
    except AssayError:
        return None
    try:
        return int(json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))["iter"])
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


class Trainer:
    def __init__(
        self,
        cfg: TrainingConfig,
        dist: Dist,
        resume: Checkpoint | None,
        tasks: TaskTable = CORE_TASKS,
        overwrite: bool = False,
    ):
        check_backend(cfg.log)  # a missing tracker extra: one error before anything is written
        self.cfg, self.dist, self.resume, self.overwrite = cfg, dist, resume, overwrite
        self.task_cls = resume.task if resume else task_for(cfg.objective, tasks)
        self.out = Path(cfg.run.out_dir)
        self.device = resolve_device(cfg.run.device, dist.local_rank)
        self.parallel = parallel_for(cfg.train.parallel, dist, self.device)  # ddp or fsdp (train/parallel.py)
        self._stop = False
        self._signal = "Ctrl-C"

    # -- the run folder -------------------------------------------------------------------------
    def _claim_folder(self) -> None:
        """Rank 0, holding the folder's lock: refuse to overwrite a run silently, clear what an
        `overwrite` replaces, and remove the temporary folders of writers that were killed."""
        existing = [name for name in RUN_FILES if (self.out / name).exists()]
        if self.resume is None and existing:
            if not self.overwrite:
                last = _last_iter(self.out)
                at = "" if last is None else f" (at iter {last})"
                raise ConfigError(
                    f"{self.out} already holds a run{at}: continue it with --resume "
                    f"(assay train --out {self.out} --resume), or start afresh with --overwrite "
                    "(its checkpoints and metrics are deleted)"
                )
            remove_entries(self.out, existing)
        for name in ("best", "last"):
            remove_temp_directories(self.out / name)

    # -- set-up ---------------------------------------------------------------------------------
    def _prepare_data(self):
        """(token splits or None, tokenizer). From a stream: its tokenizer and sequence length.
        From a corpus: rank 0 builds the tokenizer and token cache first, the other ranks reuse both."""
        cfg, dist = self.cfg, self.dist
        tokenizer = self.resume.tokenizer if self.resume else None
        if cfg.data.stream:
            if dist.is_main and not (Path(cfg.data.stream) / "meta.json").exists():
                self._log(f"waiting for a producer to start the stream in {cfg.data.stream}")
            meta = wait_for_stream(cfg.data.stream, cfg.data.stream_timeout)
            if cfg.data.block_size != meta["seq_len"]:
                self._log(f"data.block_size set to the stream's sequence length, {meta['seq_len']}")
                cfg.data.block_size = meta["seq_len"]
            theirs = load_tokenizer(Path(cfg.data.stream) / "tokenizer")
            if tokenizer is not None and theirs.fingerprint() != tokenizer.fingerprint():
                raise DataError(
                    f"the stream {cfg.data.stream} was made with another tokenizer than the checkpoint's "
                    f"{self.resume.directory}: resume on the stream the run was trained on"
                )
            return None, tokenizer or theirs
        shared = self.out / ".tokenizer"
        if dist.is_main:
            splits = prepare_tokens(cfg.data, tokenizer)
            if dist.enabled:
                splits.tokenizer.save(shared)
        dist.barrier()
        if not dist.is_main:
            splits = prepare_tokens(cfg.data, tokenizer or load_tokenizer(shared))
        dist.barrier()
        if dist.is_main and dist.enabled:
            shutil.rmtree(shared, ignore_errors=True)
        return splits, splits.tokenizer

    def _setup(self):
        cfg = self.cfg
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        torch.manual_seed(stable_seed(cfg.run.seed, "torch", self.dist.rank))  # dropout
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.dist.barrier()
        self.splits, self.tokenizer = self._prepare_data()
        cfg.model.vocab_size = self.tokenizer.vocab_size  # the model's vocabulary comes from the data
        if cfg.model.subs and not self.resume:
            cfg.model.special_ids = sorted(self.tokenizer.special_ids)
        if self.resume:
            self.model = self.resume.build_model(self.device)  # with EMA: the EMA weights
        else:
            self.model = self.task_cls.build_model(cfg).to(self.device)
        if cfg.model.init_from and not self.resume:
            self._init_from(cfg.model.init_from)
        self.parallel.synchronise(self.model)  # rank 0's weights everywhere, before the EMA copies them
        self.ema = EMA(self.model, cfg.train.ema_decay) if cfg.train.ema_decay else None
        if self.resume:
            self.resume.load_training_weights(self.model)  # the optimizer's own weights, if EMA was on
            if self.ema is not None:
                self.ema.updates = int(self.resume.state.get("ema_updates", 0))
        self.model.train()
        self.task = self.task_cls.create(cfg, self.dist, self.device, self.tokenizer, self.splits)
        self.task.setup_model(self.model, resumed=self.resume is not None)
        self.iter = int(self.resume.state["iter"]) if self.resume else 0
        self.best = math.inf
        # feature extraction first (frozen trunk), then fine-tuning from train.unfreeze_at_iter
        if cfg.model.freeze_transformer:
            self.model.freeze_trunk()
        # FSDP replaces the parameters by their shards: the optimizer and the EMA follow those
        self.model = self.parallel.shard(self.model)
        if self.ema is not None:
            self.ema.follow(self.model, self.parallel.like_param)
        self.optimizer = build_optimizer(self.model, cfg.train)
        # A checkpoint saved at iteration train.unfreeze_at_iter is still frozen (the loop unfreezes
        # at the top of the next iteration): its optimizer state has the head's groups only.
        at = cfg.train.unfreeze_at_iter
        if self.model.frozen_trunk and at is not None and self.iter > at:
            self._unfreeze()
        if self.resume:
            state = self.resume.state
            self.parallel.load_optimizer(self.resume, self.model, self.optimizer)
            self.task.load_state_dict(state["task"])
            rank_state = self.resume.rank_state(self.dist.rank)
            torch.set_rng_state(rank_state["torch_rng"])
            self.task.load_rank_state_dict(rank_state["task"])
            self.best = math.inf if state["best_val_loss"] is None else float(state["best_val_loss"])
        self._wrap()
        # A resumed run's config.json is rewritten with its first checkpoint, so that a failure
        # before then (a full disk) leaves the folder describing the checkpoint it holds.
        self._config_written = self.resume is None
        if self.dist.is_main:
            if self.resume is None:
                atomic_write_json(self.out / "config.json", to_dict(cfg))
            resume_iter = self.iter if self.resume else None
            tracker = open_tracker(cfg.log, self.out, to_dict(cfg), resume_step=resume_iter)
            self.metrics = MetricsLog(self.out / "metrics.jsonl", resume_iter=resume_iter, tracker=tracker)

    def _wrap(self) -> None:
        """The module the training step calls: DDP around the model under torchrun (FSDP: the
        sharded model itself), compiled if asked."""
        self.step_model = self.parallel.wrap(self.model)
        if self.cfg.train.compile:
            self.step_model = self._compile(self.step_model)

    def _init_from(self, path: str) -> None:
        report = init_from_checkpoint(self.model, path, self.tokenizer)

        def names(found: list[str], most: int = 8) -> str:
            return ", ".join(found[:most]) + (f" and {len(found) - most} more" if len(found) > most else "")

        self._log(
            f"init_from {path}: loaded {len(report['loaded'])} tensors"
            + (f"; new (freshly initialised): {names(report['new'])}" if report["new"] else "")
            + (f"; skipped (shape differs): {names(report['skipped'])}" if report["skipped"] else "")
        )

    def _unfreeze_due(self) -> bool:
        at = self.cfg.train.unfreeze_at_iter
        return self.model.frozen_trunk and at is not None and self.iter >= at

    def _unfreeze(self) -> None:
        self.model.freeze_trunk(False)
        self.model.train()
        added = add_trainable(self.optimizer, self.model, self.cfg.train)
        self._log(f"iter {self.iter}: unfreezing the transformer ({added:,} more trainable parameters)")

    def _compile(self, module):
        """torch.compile with a trial step; on any failure warn and stay in eager mode.

        The trial consumes no training randomness: task and RNG state are restored afterwards.
        """
        saved = (self.task.state_dict(), self.task.rank_state_dict(), torch.get_rng_state())
        batch = {k: v.to(self.device) for k, v in self.task.train_batch().items()}
        try:
            compiled = torch.compile(module)
            with self._autocast():
                loss = self.task.loss(compiled, batch)
            loss.backward()
            result = compiled
        except Exception as exc:  # compilation fails in many ways (no compiler, unsupported op, ...)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            self._log(
                f"[yellow]warning:[/] torch.compile failed ({type(exc).__name__}: {first}); training in eager mode"
            )
            torch._dynamo.reset()
            result = module
        self.model.zero_grad(set_to_none=True)
        self.task.load_state_dict(saved[0])
        self.task.load_rank_state_dict(saved[1])
        torch.set_rng_state(saved[2])
        return result

    def _autocast(self):
        if self.cfg.train.dtype == "bfloat16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _log(self, message: str) -> None:
        if self.dist.is_main:
            console.print(message)

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        if not self.dist.is_main:
            return self._run()
        with folder_lock(self.out):
            self._claim_folder()
            return self._run()

    def _run(self) -> TrainResult:
        self._setup()
        cfg, tc = self.cfg, self.cfg.train
        if self.dist.is_main:
            n_params = self.model.num_parameters()
            source = (
                f"stream {cfg.data.stream}"
                if self.splits is None
                else f"{len(self.splits.train):,} train / {len(self.splits.val):,} val tokens"
            )
            self._log(
                f"[bold]assay train[/] {cfg.objective} | {n_params / 1e6:.2f}M parameters | "
                f"vocab {cfg.model.vocab_size} | {source}"
                f" | {self.dist.world_size} process(es) on {self.device}"
                + (f" | resuming at iter {self.iter}" if self.resume else "")
            )
        tokens_per_iter = tc.batch_size * tc.grad_accum * self.task.block_len * self.dist.world_size
        previous_handlers = self._install_signal_handlers()
        started = time.perf_counter()
        final: dict[str, Any] = {}
        interrupted = False
        try:
            with make_progress(self.dist.is_main) as progress:
                bar = progress.add_task("train", total=tc.max_iters, completed=self.iter, info="")
                window_start, window_iters = time.perf_counter(), 0
                self._data_seconds = 0.0  # time spent getting batches (waiting for a stream, masking)
                while self.iter < tc.max_iters:
                    if self._unfreeze_due():
                        self._unfreeze()
                        self._wrap()  # DDP and compiled graphs must see the newly trainable weights
                        self._write({"iter": self.iter, "event": "unfreeze"})
                    lr = lr_at(self.iter, tc)
                    loss = self._step(lr)
                    self.iter += 1
                    window_iters += 1
                    if self.iter % tc.log_interval == 0 or self.iter == tc.max_iters:
                        loss = self.dist.sum(loss)[0] / self.dist.world_size
                        elapsed = time.perf_counter() - window_start
                        self._write(
                            {
                                "iter": self.iter,
                                "train_loss": loss,
                                "lr": lr,
                                "tokens_per_s": tokens_per_iter * window_iters / max(elapsed, 1e-9),
                                "data_frac": self._data_seconds / max(elapsed, 1e-9),
                            }
                        )
                        window_start, window_iters, self._data_seconds = time.perf_counter(), 0, 0.0
                        progress.update(bar, info=f"loss {loss:.4f}")
                    progress.update(bar, advance=1)
                    if self.iter % tc.eval_interval == 0 or self.iter == tc.max_iters:
                        final = self._evaluate_and_save(final=self.iter == tc.max_iters)
                    if self.dist.any(self._stop):
                        interrupted = True
                        self._save("last")
                        self._log(
                            f"interrupted ({self._signal}) at iter {self.iter}; last/ saved; "
                            f"continue with: assay train --out {self.out} --resume"
                        )
                        break
        finally:
            for signum, previous in previous_handlers.items():
                signal.signal(signum, previous)
            if self.dist.is_main:
                self.metrics.close()
        seconds = time.perf_counter() - started
        if self.dist.is_main:
            if tc.plot:
                plot_loss_curve(self.out / "metrics.jsonl", self.out / "loss.png", f"{cfg.objective}: {self.out.name}")
            if final:
                atomic_write_json(self.out / "eval.json", {"iter": self.iter, **final})
        # Leave together: a rank that tears down gloo while another still works aborts the process.
        self.dist.barrier()
        return TrainResult(self.out, self.iter, final, interrupted, seconds, self.dist.rank)

    def _step(self, lr: float) -> float:
        tc = self.cfg.train
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = 0.0
        for micro in range(tc.grad_accum):
            waited = time.perf_counter()
            batch = {k: v.to(self.device, non_blocking=True) for k, v in self.task.train_batch().items()}
            self._data_seconds += time.perf_counter() - waited
            last = micro == tc.grad_accum - 1
            sync = nullcontext() if last else self.parallel.no_sync(self.step_model)
            with sync:
                with self._autocast():
                    loss = self.task.loss(self.step_model, batch)
                (loss / tc.grad_accum).backward()
            total += float(loss.detach())
        norm = (
            math.nan
            if tc.grad_clip is None
            else self.parallel.clip_grad_norm(self.model.trainable_parameters(), tc.grad_clip)
        )
        bad = not math.isfinite(total) or (tc.grad_clip is not None and not math.isfinite(norm))
        if self.dist.any(bad):  # before the optimizer step: the weights stay finite
            self._non_finite("training loss" if not math.isfinite(total) else "gradient norm", total, norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update()
        return total / tc.grad_accum

    def _evaluate_and_save(self, final: bool) -> dict[str, Any]:
        self.model.eval()
        # evaluation must not consume the training RNG (resume would then diverge)
        devices = [self.device] if self.device.type == "cuda" else []
        # FSDP: the whole (EMA) weights gathered on every rank, evaluated without collectives
        rng, ema, whole = (
            torch.random.fork_rng(devices=devices),
            self._ema_applied(),
            self.parallel.gathered(self.model),
        )
        with rng, self._autocast(), ema, whole:
            metrics = self.task.evaluate(self.model, final=final)
        self.model.train()
        if self.dist.any(not math.isfinite(metrics["val_loss"])):
            self._non_finite("validation loss", metrics["val_loss"], math.nan, stepped=True)
        event = self.task.observe(metrics)
        self._write({"iter": self.iter, **metrics})
        if event:
            message = event.pop("message", None)
            self._write({"iter": self.iter, **event})
            if message:
                self._log(message)
        summary = self.task.summary(metrics)
        improved = metrics["val_loss"] < self.best
        if improved:
            self.best = metrics["val_loss"]
        extra = "".join(
            f" | {k.removeprefix('val_')} {v:.4f}" for k, v in metrics.items() if k.startswith("val_elbo_bits")
        )
        self._log(
            f"iter {self.iter:>6} | val_loss {metrics['val_loss']:.4f}"
            + (f" (stage {metrics['stage']}: {metrics['val_loss_stage']:.4f})" if "stage" in metrics else "")
            + (f" | bits/char {metrics['bits_per_char']:.4f}" if "bits_per_char" in metrics else "")
            + extra
            + summary
            + (" | best" if improved else "")
        )
        self._save("last")
        if improved and self.dist.is_main:
            last = self.out / "last"
            write_directory(self.out / "best", lambda tmp: shutil.copytree(last, tmp, dirs_exist_ok=True))
        self.dist.barrier()
        return metrics

    def _non_finite(self, what: str, loss: float, norm: float, stepped: bool = False) -> None:
        """Stop the run: one clear error naming the iteration; the checkpoints stay as they were."""
        iteration = self.iter if stepped else self.iter + 1
        self._write({"iter": iteration, "event": "non_finite", "what": what})
        last = _last_iter(self.out)
        kept = "; no checkpoint was saved yet" if last is None else f"; last/ holds iter {last}"
        value = loss if what != "gradient norm" else norm
        raise NonFiniteLossError(
            f"the {what} is {value} at iter {iteration}: stopped before the update{kept} "
            f"(lower train.lr, set train.grad_clip, or check the data)"
        )

    def _save(self, name: str) -> None:
        self.task.on_checkpoint()
        state = {
            "iter": self.iter,
            "best_val_loss": None if math.isinf(self.best) else self.best,
            "task": self.task.state_dict(),
        }
        rank_state = {"torch_rng": torch.get_rng_state(), "task": self.task.rank_state_dict()}
        if self.ema is None:
            self._write_checkpoint(name, state, rank_state, None)
            return
        state["ema_updates"] = self.ema.updates
        with self.ema.applied() as own:  # model.safetensors holds the EMA weights, training.safetensors its own
            names = [n for n, _ in self.model.named_parameters()]  # the order of parameters(), tied once
            self._write_checkpoint(name, state, rank_state, dict(zip(names, own, strict=True)))

    def _write_checkpoint(self, name: str, state, rank_state, training_weights) -> None:
        self._save_checkpoint(name, state, rank_state, training_weights)
        if not self._config_written and self.dist.is_main:
            atomic_write_json(self.out / "config.json", to_dict(self.cfg))
        self._config_written = True

    def _save_checkpoint(self, name: str, state, rank_state, training_weights) -> None:
        # FSDP: the whole weights and AdamW state, gathered to rank 0 (collectively)
        weights, optimizer = self.parallel.full_state(self.model, self.optimizer)
        save_checkpoint(
            self.out / name,
            model=self.model,
            weights=weights,
            config=self.cfg,
            tokenizer=self.tokenizer,
            state=state,
            optimizer=optimizer,
            rank_state=rank_state,
            dist=self.dist,
            training_weights=self.parallel.full_tensors(training_weights),
        )

    def _ema_applied(self):
        return self.ema.applied() if self.ema is not None else nullcontext()

    def _write(self, record: dict[str, Any]) -> None:
        if self.dist.is_main:
            self.metrics.write(record)

    def _install_signal_handlers(self) -> dict[int, Any]:
        """First Ctrl-C or SIGTERM (preemption, torchrun shutting down): finish the current step,
        save `last/`, stop. A second one: stop at once. Returns the handlers to restore."""

        def handler(signum, frame):
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True
            self._signal = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self._log(f"{self._signal}: stopping after this step (send it again to abort without saving)")

        previous = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread
            pass
        return previous
