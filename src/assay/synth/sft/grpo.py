"""GRPO (group-relative policy optimisation, DeepSeekMath) on top of a LoRA policy: the mechanics.

Per prompt (a vibe of GRPO.jsonl in the SFT prompt format), G completions are sampled from the
policy; each is rewarded by the seed's reward (`assay.synth.scorers.reward`, or any injected
`reward_fn(vibe, text) -> float`); advantages are normalised within the group,

    A_i = (r_i - mean(r)) / (std(r) + eps)                (population std; all equal -> all 0)

and the loss on completion tokens (one policy update per sample, so the PPO ratio is 1 and its
clipping never binds) is

    L = mean_i mean_t [ -A_i * exp(logp - sg(logp)) + beta * KL_t ],
    KL_t = exp(ref - logp) - (ref - logp) - 1             (the k3 estimator: >= 0, 0 iff equal)

where `ref` is the log-prob under the frozen SFT policy. The policy is a *fresh* LoRA on the
merged SFT model (`assay synth export-sft`), so the reference is simply the adapter disabled,
costs no second copy of the weights, and the KL is exactly 0 before the first update.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from assay.config import Section, to_dict
from assay.errors import DataError
from assay.synth.sft.config import LoRASection
from assay.tracking import TrackingSettings, check_backend, open_tracker

RewardFn = Callable[[str, str], float]


class GRPOConfig(Section):
    data: str | None = Field(None, description="GRPO.jsonl: rows with a vibe.")
    base: str = Field("local/smollm2", description="The SFT policy: local/MERGED_DIR (from export-sft).")
    out_dir: str = "runs/grpo"
    prompt_field: str = "vibe_noisy"
    limit: int | None = Field(None, ge=1, description="Use at most this many prompts.")
    steps: int = Field(4, ge=1, description="Optimizer steps (one prompt per step, in file order).")
    group_size: int = Field(4, ge=2, description="Completions per prompt (G).")
    max_new_tokens: int = Field(768, ge=1)
    temperature: float = Field(1.0, gt=0)
    lr: float = Field(1e-5, gt=0)
    kl_coef: float = Field(0.04, ge=0, description="beta: weight of the KL penalty to the SFT policy.")
    eps: float = Field(1e-4, gt=0, description="Added to the group's reward std.")
    grad_clip: float = Field(1.0, ge=0)
    micro_batch: int = Field(1, ge=1, description="Completions per forward/backward pass (memory vs speed).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward: far less memory.")
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    device: str = Field("auto", description="auto (cuda when available), cpu, cuda or cuda:N.")
    lora: LoRASection = Field(default_factory=lambda: LoRASection(dropout=0.0))
    log: TrackingSettings = Field(default_factory=TrackingSettings)


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """[G] rewards -> [G] advantages, zero-mean and (up to eps) unit-std within the group."""
    rewards = rewards.double()
    return ((rewards - rewards.mean()) / (rewards.std(unbiased=False) + eps)).float()


@torch.no_grad()
def sample_group(
    model, prompt_ids: list[int], group: int, max_new_tokens: int, temperature: float, eos_id: int, generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """G sampled continuations of one prompt: tokens [G, L] and mask [G, L] (1 up to and including
    each row's end-of-turn token, 0 after it). The prompt is prefilled once and its KV cache shared."""
    from transformers import DynamicCache

    was_training = model.training
    model.eval()
    device = _device_of(model)
    cache = DynamicCache()
    out = model(input_ids=torch.tensor([prompt_ids], device=device), past_key_values=cache, use_cache=True)
    cache = out.past_key_values
    cache.batch_repeat_interleave(group)
    logits = out.logits[:, -1].expand(group, -1)  # [G, V]
    tokens, alive = [], torch.ones(group, dtype=torch.bool)
    masks = []
    for _ in range(max_new_tokens):
        probs = torch.softmax(logits.float() / temperature, dim=-1).cpu()  # the generator is a CPU one
        token = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # [G]
        token = torch.where(alive, token, torch.full_like(token, eos_id))
        tokens.append(token)
        masks.append(alive.clone())
        alive &= token != eos_id
        if not alive.any():
            break
        step_ids = token[:, None].to(device)
        logits = model(input_ids=step_ids, past_key_values=cache, use_cache=True).logits[:, -1]
    model.train(was_training)
    return torch.stack(tokens, 1), torch.stack(masks, 1).long()


def completion_logprobs(model, prompt_ids: list[int], tokens: torch.Tensor) -> torch.Tensor:
    """Log-probs [G, L] of each completion token given the prompt and the tokens before it (the
    output layer runs on completion positions only)."""
    group, length = tokens.shape
    device = _device_of(model)
    tokens = tokens.to(device)
    prompt = torch.tensor([prompt_ids], device=device).expand(group, -1)
    ids = torch.cat([prompt, tokens], 1)  # [G, P + L]
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state  # [G, P+L, d]
    p = len(prompt_ids)
    logits = base.get_output_embeddings()(hidden[:, p - 1 : p + length - 1]).float()  # [G, L, V]
    return torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def grpo_loss(
    logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mean KL) from per-token log-probs [G, L] under the policy (with grad) and the
    reference, [G] advantages and the [G, L] completion mask."""
    mask = mask.float()
    ratio = torch.exp(logp - logp.detach())  # 1, with the gradient of logp
    delta = ref_logp - logp
    kl = torch.exp(delta) - delta - 1  # [G, L], >= 0
    per_token = -advantages[:, None] * ratio + kl_coef * kl
    lengths = mask.sum(1).clamp(min=1)
    loss = ((per_token * mask).sum(1) / lengths).mean()
    kl_mean = ((kl.detach() * mask).sum(1) / lengths).mean()
    return loss, kl_mean


def grpo_step(policy, tokenizer, vibe: str, reward_fn: RewardFn, cfg: GRPOConfig, optimizer, generator) -> dict:
    """Sample a group for `vibe`, reward it, and take one optimizer step; returns the step's metrics."""
    from assay.synth.sft.data import encode_prompt, end_of_turn_id, prompt_messages

    _, prompt_ids = encode_prompt(tokenizer, prompt_messages(vibe))
    eos = end_of_turn_id(tokenizer)
    tokens, mask = sample_group(policy, prompt_ids, cfg.group_size, cfg.max_new_tokens, cfg.temperature, eos, generator)
    lengths = mask.sum(1).tolist()
    texts = [
        tokenizer.decode(row[:n].tolist(), skip_special_tokens=True) for row, n in zip(tokens, lengths, strict=True)
    ]
    rewards = torch.tensor([float(reward_fn(vibe, text)) for text in texts])
    advantages = group_advantages(rewards, cfg.eps)
    # The loss is a mean over the group, so each micro-batch's share is backpropagated on its own:
    # the same gradient as one pass over the group, with one micro-batch's activations in memory.
    optimizer.zero_grad(set_to_none=True)
    total_loss = total_kl = 0.0
    for start in range(0, cfg.group_size, cfg.micro_batch):
        rows = slice(start, start + cfg.micro_batch)
        with torch.no_grad(), policy.disable_adapter():
            ref = completion_logprobs(policy, prompt_ids, tokens[rows])
        logp = completion_logprobs(policy, prompt_ids, tokens[rows])
        device = logp.device
        loss, kl = grpo_loss(logp, ref, advantages[rows].to(device), mask[rows].to(device), cfg.kl_coef)
        share = len(range(*rows.indices(cfg.group_size))) / cfg.group_size
        (loss * share).backward()
        total_loss, total_kl = total_loss + float(loss.detach()) * share, total_kl + float(kl) * share
    params = [p for p in policy.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
    optimizer.step()
    return {
        "loss": total_loss,
        "kl": total_kl,
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std(unbiased=False)),
        "rewards": rewards.tolist(),
        "advantages": advantages.tolist(),
        "completion_tokens": mask.sum(1).tolist(),
        "grad_norm": float(grad_norm),
    }


def seed_reward() -> RewardFn:
    """The seed's reward (format, schema, audio, title similarity, penalties) as `(vibe, text) -> float`."""
    from assay.synth.scorers.audio import AudioScorer
    from assay.synth.scorers.reward import reward

    audio = AudioScorer()
    return lambda vibe, text: reward(vibe, text, audio_scorer=audio)["final_score"]


def load_prompts(path: str | Path, field: str, limit: int | None) -> list[str]:
    from assay.io import JSONL_MAX, check_size, iter_jsonl

    vibes = []
    for lineno, row in iter_jsonl(check_size(path, JSONL_MAX, "a JSONL of prompts")):
        vibe = row.get(field) if isinstance(row, dict) else None
        if not isinstance(vibe, str) or not vibe.strip():
            raise DataError(f"{path} line {lineno} has no vibe in field {field!r}")
        vibes.append(vibe)
        if limit is not None and len(vibes) >= limit:
            break
    if not vibes:
        raise DataError(f"{path}: no prompts")
    return vibes


def train_grpo(cfg: GRPOConfig, reward_fn: RewardFn | None = None) -> dict[str, Any]:
    """`cfg.steps` GRPO steps, one prompt each; writes out_dir/metrics.jsonl and out_dir/adapter/."""
    from assay.errors import ConfigError
    from assay.io import atomic_write_json, write_directory
    from assay.rng import generator, stable_seed
    from assay.synth.sft.lora import enable_gradient_checkpointing, load_base, save_adapter, trainable_parameters, wrap
    from assay.train.metrics import MetricsLog

    if cfg.data is None:
        raise ConfigError("no prompts: give --data GRPO.jsonl (data)")
    check_backend(cfg.log)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    prompts = load_prompts(cfg.data, cfg.prompt_field, cfg.limit)
    torch.manual_seed(stable_seed(cfg.seed, "grpo-init"))
    model, tokenizer, base_dir = load_base(cfg.base)
    lc = cfg.lora
    from assay.train.distributed import resolve_device

    device = resolve_device(cfg.device)
    policy = wrap(model, lc.r, lc.alpha, lc.dropout, lc.target_modules).to(device).train()
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(policy)
    optimizer = torch.optim.AdamW(trainable_parameters(policy), lr=cfg.lr, weight_decay=0.0)
    reward_fn = reward_fn or seed_reward()
    gen = generator(cfg.seed, "grpo-sample")
    out = Path(cfg.out_dir)
    log = MetricsLog(out / "metrics.jsonl", tracker=open_tracker(cfg.log, out, to_dict(cfg)))
    history = []
    started = time.perf_counter()
    try:
        for step in range(cfg.steps):
            tick = time.perf_counter()
            metrics = grpo_step(policy, tokenizer, prompts[step % len(prompts)], reward_fn, cfg, optimizer, gen)
            metrics = {"iter": step + 1, **metrics, "step_s": time.perf_counter() - tick}
            log.write(metrics)
            history.append(metrics)
    finally:
        log.close()
    meta = {"base": cfg.base, "base_dir": str(base_dir), "prompt_field": cfg.prompt_field, "grpo": True}
    write_directory(out / "adapter", lambda tmp: save_adapter(policy, tmp, meta))
    summary = {
        "steps": cfg.steps,
        "seconds": time.perf_counter() - started,
        "reward_mean_first": history[0]["reward_mean"],
        "reward_mean_last": history[-1]["reward_mean"],
        "kl_last": history[-1]["kl"],
        "out_dir": str(out),
    }
    atomic_write_json(out / "summary.json", json.loads(json.dumps(summary)))
    return summary
