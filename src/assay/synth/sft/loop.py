"""`train_sft`: LoRA fine-tuning of a causal LM on assistant tokens, with exact resume.

One optimizer step = `grad_accum` forward/backward passes of `batch_size` examples; the loss of a
step is the mean cross-entropy over *all* assistant tokens of its passes (each pass's summed loss
is divided by the step's token count before backward), so it does not depend on how the examples
are split into passes. AdamW updates the LoRA parameters only; the learning rate warms up
linearly, then follows a cosine to `min_lr`; gradients are clipped to `grad_clip`.

Examples are drawn from an endless sequence of epochs, each a permutation of the training examples
seeded by (seed, epoch); the checkpoint stores the step, the cursor into that sequence, the
current epoch's order and every RNG, so a resumed run sees the same batches, the same dropout
masks and logs the same losses as one that never stopped. Validation (the same loss on SFT-Val)
runs in eval mode without touching any RNG.

    out_dir/config.json      the SFTConfig
    out_dir/metrics.jsonl    per step: iter, train_loss, lr, tokens, step_s; + val_loss at evals
    out_dir/checkpoint/      the latest resumable checkpoint (checkpoint.py)
    out_dir/adapter/         the final adapter (lora.save_adapter); `assay synth export-sft` merges it
    out_dir/summary.json     steps, seconds, data counts, last losses
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from assay.errors import AssayError, ConfigError, DataError
from assay.llm.local import THREADS_ENV
from assay.model.transformer import IGNORE_INDEX
from assay.synth.sft.config import SFTConfig
from assay.synth.sft.data import Example, SFTData, collate, load_examples, target_tokens
from assay.tracking import RUN_FILES as TRACKER_FILES
from assay.tracking import check_backend, open_tracker
from assay.train.distributed import resolve_device
from assay.train.optim import warmup_cosine


def assistant_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy, token count) over the labelled positions of `batch`.

    The output layer runs only where a label is predicted: the system prompt is ~2,200 of the
    ~2,800 tokens of an example, and a [T, 49k] logits tensor per example would dominate memory.
    Same value as the HF model's own `labels=` loss times the token count.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    device = base.get_output_embeddings().weight.device
    batch = {k: v.to(device) for k, v in batch.items()}
    hidden = base.get_decoder()(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    ).last_hidden_state  # [b, T, d]
    targets = batch["labels"][:, 1:]  # position t predicts token t + 1
    keep = targets != IGNORE_INDEX  # [b, T-1]
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()  # [n, vocab]
    return F.cross_entropy(logits, targets[keep], reduction="sum"), int(keep.sum())


@torch.no_grad()
def evaluate(model, examples: list[Example], batch_size: int, pad_id: int, autocast=None) -> float:
    """Mean assistant-token cross-entropy (nats) over `examples`, in eval mode, RNG untouched."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        for start in range(0, len(examples), batch_size):
            with autocast() if autocast else nullcontext():
                loss, n = assistant_loss(model, collate(examples[start : start + batch_size], pad_id))
            total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(count, 1)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    from assay.rng import generator

    return torch.randperm(n, generator=generator(seed, "sft-order", epoch)).tolist()


class Cursor:
    """Position in the endless sequence of shuffled epochs."""

    def __init__(self, n: int, seed: int, position: int = 0, order: list[int] | None = None):
        self.n, self.seed, self.position = n, seed, position
        self.order = order if order is not None else epoch_order(n, seed, position // n)

    def take(self, count: int) -> list[int]:
        out = []
        for _ in range(count):
            if self.position > 0 and self.position % self.n == 0:
                self.order = epoch_order(self.n, self.seed, self.position // self.n)
            out.append(self.order[self.position % self.n])
            self.position += 1
        return out


def fingerprint(examples: list[Example]) -> str:
    """Identifies the tokenised training set: a resume on different data is refused."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(f"{e.row_id}:{len(e.input_ids)}:{sum(e.input_ids)}\n".encode())
    return digest.hexdigest()[:16]


def total_steps(cfg: SFTConfig, n_examples: int) -> int:
    t = cfg.train
    if t.max_steps is not None:
        return t.max_steps
    return max(1, math.ceil(t.epochs * n_examples / (t.batch_size * t.grad_accum)))


def _autocast(cfg: SFTConfig, device: torch.device):
    """A context-manager factory for bf16 autocast, or None (fp32)."""
    if not cfg.run.bf16:
        return None
    if device.type != "cuda":
        raise ConfigError("run.bf16 needs a CUDA device (on the CPU training runs in fp32)")
    return lambda: torch.autocast("cuda", dtype=torch.bfloat16)


def _threads(cfg: SFTConfig) -> None:
    threads = cfg.run.threads
    if threads is None and os.environ.get(THREADS_ENV, "").strip().isdigit():
        threads = int(os.environ[THREADS_ENV])
    if threads:
        torch.set_num_threads(threads)


def _load_split(path: str | None, tokenizer, cfg: SFTConfig, limit: int | None) -> SFTData | None:
    if path is None:
        return None
    d = cfg.data
    return load_examples(path, tokenizer, d.prompt_field, d.target_field, d.max_seq_len, limit)


RUN_FILES = ("checkpoint", "checkpoint.old", "adapter", "config.json", "metrics.jsonl", "summary.json")
RUN_FILES += TRACKER_FILES


def train_sft(
    cfg: SFTConfig, resume: bool = False, stop_after: int | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Train (or continue) the run in `cfg.run.out_dir`; returns the summary (also summary.json).

    A folder that holds a run is refused unless `resume` (continue it) or `overwrite` (delete the
    run's files, `RUN_FILES`, and start afresh; other files in the folder are left alone).

    stop_after: end after this many steps as if interrupted (a checkpoint is written there), so a
    later `resume=True` continues the same schedule.
    """
    from assay.config import to_dict
    from assay.io import atomic_write_json, write_directory

    check_backend(cfg.log)  # a missing tracker extra: one error before anything is written
    from assay.progress import console, progress_bar
    from assay.rng import stable_seed
    from assay.synth.sft import checkpoint
    from assay.synth.sft.lora import enable_gradient_checkpointing, load_base, save_adapter, trainable_parameters, wrap
    from assay.train.metrics import MetricsLog

    out = Path(cfg.run.out_dir)
    ckpt_dir = out / "checkpoint"
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite are exclusive: continue the run, or start it afresh")
    if overwrite:
        from assay.io import remove_entries

        remove_entries(out, RUN_FILES)
    found = checkpoint.intact(ckpt_dir)  # checkpoint/, or checkpoint.old after a save killed mid-swap
    if resume and found is None:
        raise AssayError(f"nothing to resume: {ckpt_dir} holds no checkpoint")
    if not resume and (found is not None or ckpt_dir.exists()):
        raise AssayError(f"{out} already holds a run: continue it with --resume, or start afresh with --overwrite")
    if cfg.data.train is None:
        raise ConfigError("no training data: give --data SFT-Train.jsonl (data.train)")
    _threads(cfg)
    device = resolve_device(cfg.run.device)
    autocast = _autocast(cfg, device)
    torch.manual_seed(stable_seed(cfg.run.seed, "sft-init"))

    model, tokenizer, base_dir = load_base(cfg.model.base)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_data = _load_split(cfg.data.train, tokenizer, cfg, cfg.data.limit)
    if not train_data.examples:
        raise DataError(f"{cfg.data.train}: no usable rows ({json.dumps(train_data.summary()['skipped'])})")
    val_data = _load_split(cfg.data.val, tokenizer, cfg, cfg.data.val_limit)
    lc = cfg.lora
    model = wrap(model, lc.r, lc.alpha, lc.dropout, lc.target_modules).to(device)
    t = cfg.train
    if t.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    optimizer = torch.optim.AdamW(
        trainable_parameters(model), lr=t.lr, betas=(t.beta1, t.beta2), weight_decay=t.weight_decay, foreach=True
    )
    examples = train_data.examples
    meta = {
        "base": cfg.model.base,
        "base_dir": str(base_dir),
        "prompt_field": cfg.data.prompt_field,
        "target_field": cfg.data.target_field,
    }
    steps = total_steps(cfg, len(examples))
    state: dict[str, Any] = {"step": 0, "cursor": 0, "best_val_loss": None}
    if resume:
        state = checkpoint.load(found, model, optimizer)
        if state.get("data_fingerprint") != fingerprint(examples):
            raise DataError(f"{cfg.data.train}: not the training data the checkpoint in {found} was trained on")
    cursor = Cursor(len(examples), cfg.run.seed, state["cursor"], state.get("order"))
    start = state["step"]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", to_dict(cfg))
    tracker = open_tracker(cfg.log, out, to_dict(cfg), resume_step=start if resume else None)
    log = MetricsLog(out / "metrics.jsonl", resume_iter=start if resume else None, tracker=tracker)
    started = time.perf_counter()
    val_loss = None
    last_record: dict[str, Any] = {}

    def save_checkpoint(step: int) -> None:
        checkpoint.save(
            ckpt_dir,
            model,
            optimizer,
            {
                "step": step,
                "cursor": cursor.position,
                "order": cursor.order,
                "examples": len(examples),
                "data_fingerprint": fingerprint(examples),
                "best_val_loss": state.get("best_val_loss"),
            },
            meta,
        )

    model.train()
    end = steps if stop_after is None else min(steps, stop_after)
    try:
        with progress_bar(steps, "sft", enabled=cfg.run.progress, completed=start) as advance:
            for step in range(start, end):
                tick = time.perf_counter()
                # cosine to min_lr at the last step (a run shorter than its warmup still decays)
                lr = warmup_cosine(step, t.lr, t.min_lr, t.warmup_steps, max(steps - 1, t.warmup_steps + 1))
                for group in optimizer.param_groups:
                    group["lr"] = lr
                passes = [[examples[i] for i in cursor.take(t.batch_size)] for _ in range(t.grad_accum)]
                n_tokens = sum(target_tokens(p) for p in passes)
                summed = 0.0
                for chunk in passes:
                    with autocast() if autocast else nullcontext():
                        loss, _ = assistant_loss(model, collate(chunk, pad_id))
                    (loss / n_tokens).backward()
                    summed += float(loss.detach())
                if t.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(trainable_parameters(model), t.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                done = step + 1
                record = {
                    "iter": done,
                    "train_loss": summed / n_tokens,
                    "lr": lr,
                    "tokens": n_tokens,
                    "step_s": time.perf_counter() - tick,
                }
                if val_data is not None and val_data.examples and (done % t.eval_interval == 0 or done == steps):
                    val_loss = evaluate(model, val_data.examples, t.batch_size, pad_id, autocast)
                    record["val_loss"] = val_loss
                    best = state.get("best_val_loss")
                    state["best_val_loss"] = val_loss if best is None else min(best, val_loss)
                    console.print(
                        f"step {done}/{steps}: train loss {record['train_loss']:.4f}, val loss {val_loss:.4f}"
                    )
                log.write(record)
                last_record = record
                if done % t.checkpoint_interval == 0 or done == end:
                    save_checkpoint(done)
                advance(1, info=f"loss {record['train_loss']:.4f}")
    finally:
        log.close()
    finished = end == steps
    if finished:
        write_directory(out / "adapter", lambda tmp: save_adapter(model, tmp, meta))
    summary = {
        "steps": end,
        "total_steps": steps,
        "finished": finished,
        "seconds": time.perf_counter() - started,
        "train": train_data.summary(),
        "val": val_data.summary() if val_data is not None else None,
        "last": last_record,
        "val_loss": val_loss,
        "best_val_loss": state.get("best_val_loss"),
        "trainable_parameters": sum(p.numel() for p in trainable_parameters(model)),
        "device": str(device),
        "out_dir": str(out),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary
