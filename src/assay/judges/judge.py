"""Score texts with trained judges: how much of a text was machine-written, and which tokens.

    from assay import Judge
    judge = Judge.load("runs/judges")          # a folder of judge runs, or one run/checkpoint
    [result] = judge.score(["Good morrow, neighbour Baptista."])
    result["score"]                             # sequence score in [0, 1]
    result["tokens"][0]                         # {"text": "G", "start": 0, "end": 1, "p_replaced": 0.03, ...}

A sequence scorer gives `score`; a token classifier gives every token's class probabilities and
`p_replaced` = 1 - P(original). With only a token classifier, `score` is the mean `p_replaced`.
Texts longer than the judges' window are scored window by window; the sequence score is then
the token-weighted mean over windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from assay.checkpoint_io import resolve_checkpoint
from assay.devices import resolve_device
from assay.errors import AssayError, CheckpointError
from assay.judges.tasks import TASKS
from assay.train.checkpoint import Checkpoint, ObjectiveError, load_checkpoint


def _judge_checkpoint(path: Path) -> Checkpoint | None:
    """The judge checkpoint at `path`; None if it holds no checkpoint, or one of another objective
    (a language model). A judge checkpoint that cannot be read is an error, never skipped: a
    silently dropped scorer would turn the score into the inspector's mean."""
    try:
        resolve_checkpoint(path)
    except CheckpointError:
        return None
    try:
        return load_checkpoint(path, tasks=TASKS)
    except ObjectiveError:
        return None


class Judge:
    def __init__(
        self, scorer: Checkpoint | None = None, inspector: Checkpoint | None = None, device: str | torch.device = "cpu"
    ):
        if scorer is None and inspector is None:
            raise AssayError("a judge needs a sequence_scorer or a token_classifier checkpoint")
        ckpts = [c for c in (scorer, inspector) if c is not None]
        if len({c.tokenizer.fingerprint() for c in ckpts}) > 1:
            raise AssayError("the sequence scorer and token classifier use different tokenizers")
        self.tokenizer = ckpts[0].tokenizer
        self.device = resolve_device(device)  # cpu, cuda, auto, ... (assay.devices)
        self.scorer = (scorer, scorer.build_model(self.device)) if scorer else None
        self.inspector = (inspector, inspector.build_model(self.device)) if inspector else None
        self.sources = [str(c.directory) for c in ckpts]

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Judge:
        """A judge run or checkpoint, or a folder whose sub-folders are judge runs; its models on
        `device`."""
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"{path} does not exist")
        own = _judge_checkpoint(path)
        found = (
            [own]
            if own
            else [c for child in sorted(path.iterdir()) if child.is_dir() and (c := _judge_checkpoint(child))]
        )
        by_mode: dict[str, Checkpoint] = {}
        for ckpt in found:
            mode = ckpt.config.model.mode
            if mode in by_mode:
                raise AssayError(f"{path} holds two {mode} runs: point at one of them")
            by_mode[mode] = ckpt
        if not by_mode:
            raise CheckpointError(f"{path} holds no judge (a sequence_scorer or token_classifier run)")
        return cls(by_mode.get("sequence_scorer"), by_mode.get("token_classifier"), device)

    # ------------------------------------------------------------------------------------------
    def score(self, texts: str | list[str], batch_size: int = 16) -> list[dict[str, Any]]:
        """One result per text. The windows of all the texts share batches of `batch_size`, so many
        short texts cost a few forward passes, not one each."""
        if isinstance(texts, str):
            texts = [texts]
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise AssayError("cannot score an empty text")
        encoded = [self.tokenizer.encode_with_offsets(text) for text in texts]
        results: list[dict[str, Any]] = [
            {"text": text, "n_tokens": len(ids)} for text, (ids, _) in zip(texts, encoded, strict=True)
        ]
        id_lists = [ids for ids, _ in encoded]
        if self.inspector is not None:
            ckpt, model = self.inspector
            per_text, cls_first = self._outputs(ckpt, model, id_lists, batch_size)
            for result, (_, offsets), windows in zip(results, encoded, per_text, strict=True):
                text = result["text"]
                probs = torch.cat([o[1:] if cls_first else o for o, _ in windows]).softmax(-1)
                result["tokens"] = [
                    {"text": text[a:b], "start": a, "end": b, "p_replaced": float(1 - p[0]), "probs": p.tolist()}
                    for (a, b), p in zip(offsets, probs, strict=True)
                ]
        if self.scorer is not None:
            ckpt, model = self.scorer
            per_text, _ = self._outputs(ckpt, model, id_lists, batch_size)
            for result, windows in zip(results, per_text, strict=True):
                scores = torch.sigmoid(torch.stack([o for o, _ in windows]))
                sizes = torch.tensor([n for _, n in windows], dtype=torch.float32)
                result["score"] = float((scores * sizes).sum() / sizes.sum())
        else:
            for result in results:
                result["score"] = sum(t["p_replaced"] for t in result["tokens"]) / max(len(result["tokens"]), 1)
        return results

    def _outputs(
        self, ckpt: Checkpoint, model, id_lists: list[list[int]], batch_size: int
    ) -> tuple[list[list[tuple[torch.Tensor, int]]], bool]:
        """Per text, its windows' (model output, text tokens in the window); and whether each
        window starts with [CLS]. Windows are the judge's training length."""
        info = ckpt.state.get("task", {}).get("input", {})
        cls_first = bool(info.get("cls", False))
        width = int(info.get("seq_len", ckpt.config.data.block_size)) - (1 if cls_first else 0)
        head = [self.tokenizer.cls_id] if cls_first else []
        windows, owners = [], []
        for owner, ids in enumerate(id_lists):
            for i in range(0, len(ids), width):
                windows.append(head + ids[i : i + width])
                owners.append(owner)
        per_text: list[list[tuple[torch.Tensor, int]]] = [[] for _ in id_lists]
        for owner, window, output in zip(owners, windows, self._run(model, windows, batch_size), strict=True):
            per_text[owner].append((output, len(window) - len(head)))
        return per_text, cls_first

    @torch.no_grad()
    def _run(self, model, windows: list[list[int]], batch_size: int) -> list[torch.Tensor]:
        """Model outputs per window (padded batches; padding is masked out of attention)."""
        outputs = []
        for start in range(0, len(windows), batch_size):
            chunk = windows[start : start + batch_size]
            width = max(len(w) for w in chunk)
            idx = torch.full((len(chunk), width), self.tokenizer.pad_id)
            real = torch.zeros(len(chunk), width, dtype=torch.bool)
            for i, w in enumerate(chunk):
                idx[i, : len(w)] = torch.tensor(w)
                real[i, : len(w)] = True
            logits, _ = model(idx.to(self.device), padding_mask=real.to(self.device))
            outputs.extend(
                logits[i, : len(w)].float().cpu() if logits.dim() == 3 else logits[i].float().cpu()
                for i, w in enumerate(chunk)
            )
        return outputs
