"""Rewriters: what makes the judges' training data in `assay judge train` (stage 2/4, the [rewrite]
section of its recipe). Each writes a finite stream of shards in the synthetic provider's format
(synthetic.py: `idx` = [CLS] + text, `token_labels` 0 original / 1 machine-written / -100 not
scored, `score` = the sample's fraction of machine-written tokens), with the LM's tokenizer, so the
same scorer and inspector training reads any of them.

    lm      the masked-diffusion LM fills masked positions of real passages (SyntheticProvider,
            `assay data produce`); the default
    llm     any model of assay.llm rewrites a span of each passage (rewrite_llm.py)
    jsonl   the user's own labelled texts (rewrite_jsonl.py)

Here: the rewriters' config sections (`Rewrite`, told apart by `kind`), the `Sources` each works
from (the LM, the corpus's [data] section, the LLM settings), the lm rewriter, and `write_stream`,
the writer the llm and jsonl rewriters share: a resumable, finite stream whose shards are pure
functions of (split, seq), as `assay.data.produce` makes them. The table `rewrite.kind` -> rewriter
is recipe.py's `REWRITERS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, field_validator

from assay.config import Section, to_dict, validate
from assay.data.config import DataConfig
from assay.data.stream import list_shards, load_shard, produce, read_meta, schema_of, write_meta, write_shard
from assay.data.tokenizer import Tokenizer
from assay.errors import DataError
from assay.llm.settings import LLMSettings
from assay.masking import MaskingConfig
from assay.progress import progress_bar


def _mixed_masks() -> MaskingConfig:
    """How much of each passage the LM rewrites: the shipped `judge_shakespeare` config's mix of
    scattered, clustered and span masks."""
    from assay.config import read_toml

    return validate(MaskingConfig, read_toml("judge_shakespeare")["masking"])


class RewriteBase(Section):
    """What every rewriter's stream has."""

    shards: int = Field(60, ge=1, description="Training shards to make.")
    shard_size: int = Field(64, ge=1, description="Samples per shard.")
    val_shards: int = Field(8, ge=1, description="Validation shards (jsonl: at most this many).")
    block_size: int = Field(
        128, ge=8, description="Tokens per sample, [CLS] included; at most the LM's block size (lowered to it)."
    )
    seed: int = Field(1337, description="Seed of the passages, masks and spans drawn.")


class LMRewrite(RewriteBase):
    """The masked-diffusion LM fills in masked positions of real passages (the synthetic provider)."""

    kind: Literal["lm"] = "lm"
    masking: MaskingConfig = Field(
        default_factory=_mixed_masks, description="Which positions are masked (random, sticky and span stages)."
    )
    steps: int = Field(1, ge=1, description="Denoising passes of the LM (1: every mask at once).")
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature of the LM.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass of the LM.")
    workers: int = Field(2, ge=1, description="Producer processes (one torch thread each).")


class LLMRewrite(RewriteBase):
    """An LLM (the [llm] section) rewrites word-aligned spans of real passages."""

    kind: Literal["llm"] = "llm"
    shards: int = Field(8, ge=1, description="Training shards to make (one LLM request per span).")
    val_shards: int = Field(4, ge=1, description="Validation shards.")
    spans: int = Field(1, ge=1, le=8, description="Spans rewritten per passage, one request each.")
    rate: tuple[float, float] = Field(
        (0.1, 0.5), description="Range of the share of a passage's characters a span covers (drawn per span)."
    )
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature of the LLM.")
    max_tokens: int = Field(128, ge=1, description="Most tokens of one answer.")

    @field_validator("rate")
    @classmethod
    def _check_rate(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < v[0] <= v[1] <= 1.0:
            raise ValueError(f"rate must be [low, high] with 0 < low <= high <= 1, got {list(v)}")
        return v


class JsonlRewrite(RewriteBase):
    """The user's own labelled texts (rewrite_jsonl.py has the format)."""

    kind: Literal["jsonl"] = "jsonl"
    path: str | None = Field(None, description="The labelled JSONL file (--jsonl).")
    val_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="Share of the rows held out for validation, chosen by a hash of the text."
    )


Rewrite = Annotated[LMRewrite | LLMRewrite | JsonlRewrite, Field(discriminator="kind")]


@dataclass
class Sources:
    """What a rewriter works from."""

    lm: Path  # the masked-diffusion LM's run (its tokenizer; the lm rewriter's writer; the baseline's LM)
    tokenizer: Tokenizer  # the LM's
    data: DataConfig  # the corpus and its split (the LM's [data] section, on the recipe's corpus)
    llm: LLMSettings  # the llm rewriter's model and endpoint
    show: bool = True  # progress bars


# -- the lm rewriter ----------------------------------------------------------------------------
def rewrite_with_lm(cfg: LMRewrite, src: Sources, out: Path) -> None:
    """`assay data produce` with the synthetic provider: the LM fills masked positions."""
    # (imported here: the provider loads the generation code, which the other rewriters never need)
    from assay.data.produce import produce_stream
    from assay.judges.synthetic import SyntheticProvider
    from assay.train.config import TrainingConfig

    tree = {
        "run": {"seed": cfg.seed},
        "data": to_dict(src.data) | {"block_size": cfg.block_size, "stream": str(out)},
        "masking": to_dict(cfg.masking),
        "stream": {
            "provider": SyntheticProvider.kind,
            "lm": str(src.lm),
            "shard_size": cfg.shard_size,
            "val_shards": cfg.val_shards,
            "max_backlog": None,
            "steps": cfg.steps,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
        },
    }
    produce_stream(
        validate(TrainingConfig, tree), out, cfg.workers, cfg.shards, show=src.show, provider_class=SyntheticProvider
    )


# -- the writer of the llm and jsonl rewriters ------------------------------------------------------
def fingerprint(*parts: Any) -> str:
    """What determines a stream's shards, hashed (a restarted writer with other settings is refused)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_stream(
    out: Path,
    make_shard: Callable[[str, int], dict[str, torch.Tensor]],
    *,
    src: Sources,
    cfg: RewriteBase,
    val_shards: int,
    mode: str,
    digest: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Make (or complete) the finite stream in `out`: `val_shards` validation and `cfg.shards`
    training shards, `make_shard(split, seq)` each. meta.json records `mode`, the LM (for the
    likelihood baseline) and the framing the judges read (`config.stream.cls`); a folder holding a
    stream with another `digest` is refused."""
    if (out / "meta.json").exists():
        meta = read_meta(out)
        if meta.get("fingerprint") != digest or meta.get("train_shards") != cfg.shards:
            raise DataError(f"{out} holds a stream made with other settings: start afresh with --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "tokenizer").exists():
        src.tokenizer.save(out / "tokenizer")
    have = list_shards(out / "val")
    first = make_shard("val", 0) if 0 not in have else None
    if first is not None:
        write_shard(out / "val", 0, first)
    if not (out / "meta.json").exists():
        sample = first if first is not None else load_shard(have[0])
        write_meta(
            out,
            {
                "mode": mode,
                "fields": schema_of(sample),
                "seq_len": int(sample["idx"].shape[1]),
                "vocab_size": src.tokenizer.vocab_size,
                "special_ids": src.tokenizer.special_ids,
                "shard_size": cfg.shard_size,
                "seed": cfg.seed,
                "train_shards": cfg.shards,
                "val_shards": val_shards,
                "fingerprint": digest,
                "lm": str(src.lm.resolve()),
                "num_classes": 2,
                "config": {
                    "data": to_dict(src.data) | {"block_size": cfg.block_size},
                    # a valid [stream] section: the judges read `cls`, `assay eval` the rest
                    "stream": {"provider": "synthetic", "lm": str(src.lm.resolve()), "shard_size": cfg.shard_size}
                    | {"val_shards": val_shards, "max_backlog": None, "cls": True},
                    "rewrite": to_dict(cfg),
                },
            }
            | (extra or {}),
        )
    done = len(list_shards(out / "val")) + len(list_shards(out / "train"))
    with progress_bar(val_shards + cfg.shards, f"rewrite ({cfg.kind})", src.show, completed=done) as advance:
        for seq in range(1, val_shards):
            if seq not in list_shards(out / "val"):
                write_shard(out / "val", seq, make_shard("val", seq))
                advance()
        produce(
            out,
            lambda seq: make_shard("train", seq),
            range(cfg.shards),
            max_backlog=None,
            on_shard=lambda seq, path: advance(info=path.name),
        )


def stream_complete(folder: Path) -> bool:
    """Whether `folder` holds a finished finite stream: meta.json, every validation and training shard."""
    if not (folder / "meta.json").exists():
        return False
    meta = read_meta(folder)
    total = meta.get("train_shards")
    return (
        total is not None
        and len(list_shards(folder / "val")) >= meta["val_shards"]
        and len(list_shards(folder / "train")) >= total
    )
