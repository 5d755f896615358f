"""Connective recovery on held-out text, with frequency baselines.

Protocol (docs/connectives.md). For every connective occurrence of the held-out text, one at a
time: a window of `block_len` tokens around it, the occurrence's tokens (and nothing else)
replaced by [MASK]. Candidates are the inventory's forms written in the occurrence's case
(lower / Capitalised / UPPER) and with its leading space, tokenised; only candidates with as many
tokens as the masked word compete (the model sees how many masks there are, and so do the
baselines). A candidate's score is the sum of the log-probabilities of its tokens at the masked
positions (each position predicted independently, as a masked LM does).

Baselines, from occurrence counts over the *training* text:
    majority            always the most frequent connective (top-5: the five most frequent),
                        blind to the number of masks
    unigram             length-compatible candidates ranked by training frequency
    class_conditional   as unigram, among the forms of the true class only (an oracle that is
                        told the class: what knowing the relation alone is worth)

Also the masked-LM loss on the *other* tokens of the held-out text (fixed random masks at rate
0.15 restricted to non-connective tokens), to see whether a strategy cost general modelling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from assay.data.blocks import fixed_blocks, gather_blocks
from assay.experiments.connectives.inventory import Inventory, annotate_with_offsets
from assay.masking.strategies import MaskVocab
from assay.model.transformer import IGNORE_INDEX
from assay.rng import generator

TOPK = (1, 5)


def _style(word: str) -> str:
    if len(word) > 1 and word.isupper():
        return "upper"
    return "capital" if word[:1].isupper() else "lower"


def _render(form: str, style: str) -> str:
    return form.upper() if style == "upper" else form[:1].upper() + form[1:] if style == "capital" else form


class Occurrences:
    """A held-out text, tokenised and annotated once: its connective occurrences (token spans,
    forms, case and leading space) and the candidate tables."""

    def __init__(self, text: str, tokenizer, inventory: Inventory):
        self.ids, offsets, spans, self.ann = annotate_with_offsets(text, tokenizer, inventory)
        self.vocab = MaskVocab.of(tokenizer)
        occ_ids, first, counts = np.unique(self.ann.occ, return_index=True, return_counts=True)
        keep = occ_ids >= 0
        self.lo, self.n = first[keep], counts[keep]  # first token and token count of each occurrence
        self.form = self.ann.form[self.lo].astype(np.int64)
        word_spans = [spans[k] for k in occ_ids[keep]]  # annotate's occurrence ids index the spans
        # a byte-level token carries the space before a word: candidates must carry it too
        self.spaced = offsets[self.lo, 0] < np.array([s for s, _, _ in word_spans], dtype=np.int64)
        self.style = [_style(text[s:e]) for s, e, _ in word_spans]
        self.candidates = self._candidate_table(tokenizer, inventory)

    def _candidate_table(self, tokenizer, inventory: Inventory) -> dict[tuple[str, bool], list[list[int]]]:
        """(style, spaced) -> token ids of every form written that way."""
        table = {}
        for style in ("lower", "capital", "upper"):
            for spaced in (False, True):
                table[style, spaced] = [
                    tokenizer.encode((" " if spaced else "") + _render(f, style)) for f in inventory.forms
                ]
        return table

    def __len__(self) -> int:
        return len(self.lo)


@torch.no_grad()
def recovery(
    model,
    occ: Occurrences,
    inventory: Inventory,
    train_form_counts: np.ndarray,
    block_len: int,
    device,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Top-k recovery of the model and the baselines on a held-out text; see the module docstring."""
    vocab = occ.vocab
    n_tokens, n_forms, n_classes = len(occ.ids), len(inventory.forms), len(inventory.classes)
    class_of = np.asarray(inventory.class_of)
    ids = torch.from_numpy(occ.ids)
    ranks = {name: np.zeros(len(occ), dtype=np.int64) for name in ("model", "unigram", "class_conditional")}
    predicted = {name: np.zeros(len(occ), dtype=np.int64) for name in ranks}
    n_candidates = np.zeros(len(occ), dtype=np.int64)
    mismatched = 0
    counts = np.asarray(train_form_counts, dtype=np.float64)
    for b0 in range(0, len(occ), batch_size):
        rows = range(b0, min(b0 + batch_size, len(occ)))
        starts = np.array([min(max(int(occ.lo[i]) - block_len // 2, 0), max(n_tokens - block_len, 0)) for i in rows])
        windows = gather_blocks(occ.ids, starts, min(block_len, n_tokens)).clone()
        for r, i in enumerate(rows):
            a = int(occ.lo[i]) - int(starts[r])
            windows[r, a : a + int(occ.n[i])] = vocab.mask_id
        logp = F.log_softmax(model(windows.to(device))[0].float(), dim=-1).cpu()  # (B, T, V)
        for r, i in enumerate(rows):
            a, n, true = int(occ.lo[i]) - int(starts[r]), int(occ.n[i]), int(occ.form[i])
            table = occ.candidates[occ.style[i], bool(occ.spaced[i])]
            actual = ids[occ.lo[i] : occ.lo[i] + n].tolist()
            if table[true] != actual:
                mismatched += 1
            forms = [f for f in range(n_forms) if len(table[f]) == n and f != true] + [true]
            tokens = torch.tensor([table[f] if f != true else actual for f in forms])  # (K, n)
            scores = logp[r, a + torch.arange(n)[None, :], tokens].sum(1).numpy()  # (K,)
            forms = np.array(forms)
            n_candidates[i] = len(forms)
            for name, score, pool in (
                ("model", scores, np.ones(len(forms), dtype=bool)),
                ("unigram", counts[forms], np.ones(len(forms), dtype=bool)),
                ("class_conditional", counts[forms], class_of[forms] == class_of[true]),
            ):
                order = np.lexsort((forms[pool], -score[pool]))  # best first; ties by inventory order
                ranked = forms[pool][order]
                ranks[name][i] = int(np.flatnonzero(ranked == true)[0])
                predicted[name][i] = ranked[0]
    majority_order = np.lexsort((np.arange(n_forms), -counts))
    ranks["majority"] = np.array([int(np.flatnonzero(majority_order == f)[0]) for f in occ.form], dtype=np.int64)
    predicted["majority"] = np.full(len(occ), majority_order[0])

    true_class = class_of[occ.form]
    out: dict[str, Any] = {"occurrences": len(occ), "mean_candidates": float(n_candidates.mean()) if len(occ) else 0.0}
    out["tokenisation_mismatches"] = mismatched
    for name in ("model", "majority", "unigram", "class_conditional"):
        out[name] = _summary(ranks[name], predicted[name], occ.form, true_class, class_of, inventory)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (true_class, class_of[predicted["model"]]), 1)
    out["confusion"] = {"classes": list(inventory.classes), "matrix": confusion.tolist()}  # rows: true class
    return out


def _summary(ranks, predicted, forms, true_class, class_of, inventory) -> dict[str, Any]:
    res: dict[str, Any] = {f"top{k}": float((ranks < k).mean()) if len(ranks) else 0.0 for k in TOPK}
    res["class_accuracy"] = float((class_of[predicted] == true_class).mean()) if len(ranks) else 0.0
    res["per_class"] = {
        c: {f"top{k}": float((ranks[true_class == ci] < k).mean()) for k in TOPK} | {"n": int((true_class == ci).sum())}
        for ci, c in enumerate(inventory.classes)
        if (true_class == ci).any()
    }
    res["per_connective"] = {
        f: {f"top{k}": float((ranks[forms == fi] < k).mean()) for k in TOPK} | {"n": int((forms == fi).sum())}
        for fi, f in enumerate(inventory.forms)
        if (forms == fi).any()
    }
    return res


@torch.no_grad()
def other_token_loss(
    model, occ: Occurrences, block_len: int, device, rate: float = 0.15, batch_size: int = 64
) -> float:
    """Masked-LM loss on non-connective tokens of a held-out text (fixed masks, the same for every model)."""
    ids, ann, vocab = occ.ids, occ.ann, occ.vocab
    starts = fixed_blocks(len(ids), block_len)
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        s = starts[i : i + batch_size]
        x = gather_blocks(ids, s, block_len)
        conn = torch.from_numpy(ann.occ[s[:, None] + np.arange(block_len)] >= 0)
        g = generator("connective-test", "other", int(s[0]))
        mask = (torch.rand(x.shape, generator=g) < rate) & vocab.maskable(x) & ~conn
        labels = x.masked_fill(~mask, IGNORE_INDEX).to(device)
        logits, _ = model(x.masked_fill(mask, vocab.mask_id).to(device), labels)
        total += float(F.cross_entropy(logits.float(), labels[labels != IGNORE_INDEX], reduction="sum"))
        count += int(mask.sum())
    return total / max(count, 1)
