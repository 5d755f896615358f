"""Targeted masking of logical connectives: the strategies of `ConnectiveStage` (config.py).

A policy sees a batch of token blocks together with their connective annotations (which
occurrence, form and position flags each token has; see `assay.experiments.connectives.inventory`) and decides
per *occurrence*, so a connective of several tokens is always masked as a whole word. Every
strategy is normalised the same way, so runs differ only in which connectives are masked:

    E[fraction of connective occurrences masked] = p      (all strategies but `random`)
    E[fraction of maskable tokens masked]        = rate   (background random masking of the
                                                           non-connective tokens fills up to it)

Probabilities per unit (a form, a structural position) come from `water_fill`, which scales
weights to the wanted mean over the training occurrences and caps each probability at 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from assay.experiments.connectives.config import ConnectiveStage
from assay.experiments.connectives.inventory import Annotations
from assay.masking.strategies import Masked, MaskVocab, mask_random
from assay.model.transformer import IGNORE_INDEX


@dataclass
class ConnectiveBlocks:
    """Annotations gathered for a batch of blocks, each (B, T) int64."""

    occ: torch.Tensor  # occurrence id, -1 off connectives
    form: torch.Tensor  # form id, -1 off connectives
    flags: torch.Tensor  # LINE_INITIAL | CLAUSE_INITIAL
    line: torch.Tensor  # line (verse) id

    @classmethod
    def gather(cls, ann: Annotations, starts: np.ndarray, block_len: int) -> ConnectiveBlocks:
        index = starts[:, None] + np.arange(block_len)[None, :]
        return cls(*(torch.from_numpy(a[index].astype(np.int64)) for a in (ann.occ, ann.form, ann.flags, ann.line)))


@dataclass(frozen=True)
class ConnectiveStats:
    """Occurrence counts over the training text that the normalisation needs."""

    form_counts: np.ndarray  # (F,) occurrences per form
    structural_counts: np.ndarray  # (2,) occurrences elsewhere / verse- or clause-initial
    chain_share: float  # fraction of occurrences in lines holding two or more
    class_of: np.ndarray  # (F,) class id of each form

    @classmethod
    def of(cls, ann: Annotations, class_of) -> ConnectiveStats:
        occ_ids, first = np.unique(ann.occ, return_index=True)
        first = first[occ_ids >= 0]  # the first token of every occurrence
        forms, flags, lines = ann.form[first], ann.flags[first], ann.line[first]
        per_line = np.bincount(lines) if len(lines) else np.zeros(1, dtype=np.int64)
        return cls(
            form_counts=np.bincount(forms, minlength=len(class_of)).astype(np.float64),
            structural_counts=np.bincount((flags > 0).astype(np.int64), minlength=2).astype(np.float64),
            chain_share=float((per_line[lines] >= 2).mean()) if len(lines) else 0.0,
            class_of=np.asarray(class_of, dtype=np.int64),
        )


def water_fill(weights: np.ndarray, counts: np.ndarray, mean: float, iters: int = 100) -> np.ndarray:
    """Probabilities min(1, c * w) per unit with the count-weighted mean `mean` (c by bisection).

    Units with zero weight get 0; if even c -> inf cannot reach the mean (too few units with
    weight), every weighted unit gets 1.
    """
    weights = np.asarray(weights, dtype=np.float64)
    total = counts.sum()
    if mean <= 0 or total <= 0:
        return np.zeros_like(weights)
    lo, hi = 0.0, 1.0
    while (counts * np.minimum(1.0, hi * weights)).sum() < mean * total and hi < 1e12:
        hi *= 2
    for _ in range(iters):
        mid = (lo + hi) / 2
        if (counts * np.minimum(1.0, mid * weights)).sum() < mean * total:
            lo = mid
        else:
            hi = mid
    return np.minimum(1.0, hi * weights)


class ConnectivePolicy:
    """One `ConnectiveStage` applied to batches; holds the running per-connective losses."""

    def __init__(self, stage: ConnectiveStage, stats: ConnectiveStats):
        self.stage, self.stats = stage, stats
        self.loss_ema: np.ndarray | None = None  # (F,) running loss per form (weight_source = loss)

    # -- probabilities ---------------------------------------------------------------------
    def form_probs(self) -> np.ndarray:
        """(F,) masking probability of an occurrence of each form (uniform / weighted)."""
        s, counts = self.stage, self.stats.form_counts
        if s.strategy != "weighted":
            return np.full(len(counts), s.p)
        if s.weight_source == "frequency":
            weights = np.where(counts > 0, np.maximum(counts, 1.0) ** -s.alpha, 0.0)
        elif self.loss_ema is None:
            weights = np.ones(len(counts))  # nothing measured yet: uniform
        else:
            measured = np.isfinite(self.loss_ema)
            fill = np.nanmean(self.loss_ema) if measured.any() else 1.0
            weights = np.where(measured, self.loss_ema, fill) ** s.beta
        return water_fill(weights, counts, s.p)

    def structural_probs(self) -> np.ndarray:
        """(2,) probability of an occurrence elsewhere / at a verse or clause start."""
        return water_fill(np.array([1.0, self.stage.boost]), self.stats.structural_counts, self.stage.p)

    def chain_rest_prob(self, share: float | None = None) -> float:
        """Probability of an occurrence outside a masked chain, so that the mean stays p, when
        `share` of the occurrences (default: of the training text's) are in chain verses."""
        sq = (self.stats.chain_share if share is None else share) * self.stage.q
        return float(np.clip((self.stage.p - sq) / max(1.0 - sq, 1e-12), 0.0, 1.0))

    def describe(self) -> str:
        s = self.stage
        if s.strategy == "random":
            return f"random: every token masked with probability {s.rate}"
        text = f"{s.strategy}: p={s.p}, rate={s.rate}"
        if s.strategy == "structural":
            lo, hi = self.structural_probs()
            text += f", P(mask)={lo:.3f} elsewhere / {hi:.3f} verse- or clause-initial"
        if s.strategy == "chain":
            text += f", chain share {self.stats.chain_share:.2f}, q={s.q}, others at {self.chain_rest_prob():.3f}"
        if s.strategy == "weighted":
            probs = self.form_probs()
            seen = self.stats.form_counts > 0
            text += f" ({s.weight_source}), P(mask) from {probs[seen].min():.3f} to {probs[seen].max():.3f}"
        if s.aux_weight:
            text += f", class head weight {s.aux_weight}"
        return text

    # -- masking ---------------------------------------------------------------------------
    def __call__(
        self, tokens: torch.Tensor, blocks: ConnectiveBlocks, vocab: MaskVocab, gen: torch.Generator
    ) -> tuple[Masked, torch.Tensor]:
        """Mask a batch; returns the masking and the targets of the connective-class head
        ((B, T): the connective's class at masked connective tokens, -100 elsewhere)."""
        s = self.stage
        maskable = vocab.maskable(tokens)
        conn = (blocks.occ >= 0) & maskable
        if s.strategy == "random":
            masked = mask_random(tokens, vocab, gen, rate=s.rate)
        else:
            cmask = self._connective_mask(blocks, conn, gen)
            n, n_conn = maskable.sum(1), cmask.sum(1)
            others = maskable & ~conn
            background = ((s.rate * n - n_conn) / others.sum(1).clamp_min(1)).clamp(0.0, 1.0)  # (B,)
            mask = cmask | (others & (torch.rand(tokens.shape, generator=gen) < background[:, None]))
            masked = Masked(
                tokens.masked_fill(mask, vocab.mask_id),
                tokens.masked_fill(~mask, IGNORE_INDEX),
                mask,
                torch.full((len(tokens),), s.rate),
            )
        classes = torch.from_numpy(self.stats.class_of)[blocks.form.clamp_min(0)]
        class_targets = torch.where(masked.mask & conn, classes, torch.full_like(classes, IGNORE_INDEX))
        return masked, class_targets

    def _connective_mask(self, blocks: ConnectiveBlocks, conn: torch.Tensor, gen) -> torch.Tensor:
        """(B, T) bool: the connective tokens to mask, decided once per occurrence."""
        s = self.stage
        B, T = conn.shape
        rows = torch.arange(B)[:, None].expand(B, T)
        # an occurrence is (row, occurrence id): blocks of one batch may overlap across epochs
        key = rows * (int(blocks.occ.max()) + 2) + blocks.occ + 1
        _, inverse = torch.unique(key[conn], return_inverse=True)
        u = torch.zeros(B, T)
        u[conn] = torch.rand(int(inverse.max()) + 1 if inverse.numel() else 0, generator=gen)[inverse]
        if s.strategy in ("uniform", "contrastive"):
            prob = torch.full((B, T), s.p)
        elif s.strategy == "weighted":
            prob = torch.from_numpy(self.form_probs()).float()[blocks.form.clamp_min(0)]
        elif s.strategy == "structural":
            prob = torch.from_numpy(self.structural_probs()).float()[(blocks.flags > 0).long()]
        else:  # chain
            eligible, chained = self._chains(blocks, conn, rows, gen)
            # the rate outside masked chains that keeps the mean at p, from this batch's share of
            # occurrences in chain verses (blocks cut verses, so it is lower than the text's)
            first = conn & (F.pad(key[:, :-1], (1, 0), value=-1) != key)  # first token of each occurrence
            share = float(eligible[first].float().mean()) if first.any() else 0.0
            rest = self.chain_rest_prob(share)
            return conn & (chained | (u < rest))
        return conn & (u < prob)

    def _chains(self, blocks, conn, rows, gen) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) bools: connective tokens in verses with two or more connectives (in the block),
        and those of them whose chain is masked (probability q per verse)."""
        line_key = rows * (int(blocks.line.max()) + 1) + blocks.line
        lines, line_inv = torch.unique(line_key[conn], return_inverse=True)
        if not len(lines):
            return torch.zeros_like(conn), torch.zeros_like(conn)
        # distinct occurrences per line: count each occurrence at its first token
        occ_key = blocks.occ[conn]
        first = torch.ones_like(occ_key, dtype=torch.bool)
        first[1:] = (occ_key[1:] != occ_key[:-1]) | (line_inv[1:] != line_inv[:-1])
        per_line = torch.zeros(len(lines), dtype=torch.long).index_add_(0, line_inv, first.long())
        multi = per_line >= 2
        chosen = multi & (torch.rand(len(lines), generator=gen) < self.stage.q)
        eligible, out = torch.zeros_like(conn), torch.zeros_like(conn)
        eligible[conn], out[conn] = multi[line_inv], chosen[line_inv]
        return eligible, out

    # -- running losses (weight_source = loss) ---------------------------------------------
    def update_losses(self, per_form: np.ndarray) -> None:
        """Fold a new measurement (F,) (NaN where a form was not seen) into the running losses."""
        per_form = np.asarray(per_form, dtype=np.float64)
        if self.loss_ema is None:
            self.loss_ema = per_form.copy()
            return
        m = self.stage.loss_momentum
        both = np.isfinite(self.loss_ema) & np.isfinite(per_form)
        self.loss_ema = np.where(
            both, m * self.loss_ema + (1 - m) * per_form, np.where(np.isfinite(per_form), per_form, self.loss_ema)
        )

    def state_dict(self) -> dict:
        ema = None if self.loss_ema is None else [None if not np.isfinite(v) else float(v) for v in self.loss_ema]
        return {"loss_ema": ema}

    def load_state_dict(self, state: dict) -> None:
        ema = state.get("loss_ema")
        self.loss_ema = None if ema is None else np.array([np.nan if v is None else v for v in ema], dtype=np.float64)
