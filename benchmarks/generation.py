"""Generation: masked-diffusion samplers against the autoregressive twin and real text.

Two runs trained alike on the same char-level corpus: a masked-diffusion LM (`--diffusion`) and its
autoregressive twin (`--ar`, `-c shakespeare_char_ar`). Each row is `--samples` texts of
`--length` characters (char-level: one token per character):

    real text        evenly spaced chunks of the diffusion run's validation split
    AR twin          the twin's samples at temperature 1, top-p 1, drawn with the KV cache in one
                     batch, each continuing a "\\n" start token (the start `assay generate` uses;
                     not part of the text); with length <= block every character is drawn from its
                     whole past (start token included), no slide of the cache
    diffusion rows   `unmask` on one (samples, length) batch of [MASK]s (length <= the block), per
                     sampler (confidence, random, ancestral, remdm with eta), steps, temperature, top-p

Metrics per row:

    bits/char        generative perplexity: the AR twin's mean next-token negative log-likelihood,
                     in bits, of characters 2..length of each text, each conditioned only on the
                     characters before it in the same text (from its first character; no start
                     token, nothing before the text), pooled over all the row's predictions
    entropy          of the pooled character distribution of the row's texts, in bits
    max repeat       the longest run of one word repeated back to back, max over texts (words:
                     lowercase runs of letters and apostrophes holding at least one letter)
    distinct bigrams unique / total word bigrams, pooled over texts (bigrams within a text)
    chars/s          characters generated per second of wall time of the generation call

Goals, relative to the AR row and real text: bits/char <= 1.15 x the AR samples', entropy within
5% of real text's, max repeat <= 2. The diffusion row meeting the most goals (lowest bits/char
ratio among equals) is marked best and its first sample printed.

    python benchmarks/generation.py                 # runs/shakespeare_char(_ar), the full grid
    python benchmarks/generation.py --grid quick    # a handful of sampler settings
    python benchmarks/generation.py --quick         # 4 samples of 64 characters, the quick grid
"""

from __future__ import annotations

import argparse
import math
import platform
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from assay.data.tokens import prepare_tokens
from assay.generate import unmask
from assay.generate.autoregressive import sample_causal
from assay.masking.strategies import MaskVocab
from assay.train.checkpoint import load_checkpoint
from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)

# (sampler, eta, steps, temperature, top_p)
FULL_GRID = [
    (sampler, eta, steps, temperature, top_p)
    for sampler, eta in (("confidence", None), ("random", None), ("ancestral", None), ("remdm", 0.02), ("remdm", 0.05))
    for steps in (64, 256)
    for temperature, top_p in ((1.0, 1.0), (1.0, 0.9), (0.8, 0.95))
]
QUICK_GRID = [
    ("confidence", None, 64, 1.0, 1.0),
    ("confidence", None, 64, 0.8, 0.95),
    ("random", None, 64, 1.0, 1.0),
    ("ancestral", None, 64, 1.0, 1.0),
    ("remdm", 0.02, 256, 1.0, 0.9),
]
MEDIUM_GRID = [  # the sampler-by-sampler comparison of docs/generation.md (128 steps)
    (sampler, eta, 128, temperature, top_p)
    for sampler, eta in (("confidence", None), ("random", None), ("ancestral", None), ("remdm", 0.05))
    for temperature, top_p in ((1.0, 1.0), (0.8, 0.95))
]
GOALS = {"bpc_ratio": 1.15, "entropy_gap": 0.05, "longest_repeat": 2}
WORD = re.compile(r"[a-z']*[a-z][a-z']*")
CONDITIONING = (
    "bits/char: AR twin's mean NLL (bits) of characters 2..length of each text, each conditioned only "
    "on the characters before it in the same text"
)


# -- metrics ------------------------------------------------------------------------------------
@torch.no_grad()
def bits_per_char(ar_model, ids: torch.Tensor, batch: int = 32) -> float:
    """Mean NLL in bits of ids[:, 1:] under the causal model, token t given tokens 0..t-1 of its
    own row; ids (N, L) with L <= the model's block. Char-level: one token is one character."""
    total, count = 0.0, 0
    for rows in ids.split(batch):
        logits, _ = ar_model(rows)  # (b, L, V)
        targets = rows[:, 1:].reshape(-1)  # token t+1 is predicted at position t
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(), targets, reduction="sum")
        total, count = total + float(nll), count + targets.numel()
    return total / count / math.log(2)


def char_entropy(texts: list[str]) -> float:
    """Entropy (bits) of the character distribution pooled over texts."""
    counts = np.array(list(Counter("".join(texts)).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def longest_repeat(text: str) -> int:
    """The longest run of one word repeated back to back (0 without words)."""
    best, run, last = 0, 0, None
    for word in words(text):
        run = run + 1 if word == last else 1
        best, last = max(best, run), word
    return best


def distinct_bigrams(texts: list[str]) -> float:
    """Unique / total word bigrams, pooled over texts (NaN without any bigram)."""
    bigrams = [pair for ws in map(words, texts) for pair in zip(ws[:-1], ws[1:], strict=True)]
    return len(set(bigrams)) / len(bigrams) if bigrams else float("nan")


def measure(name: str, ids: torch.Tensor, texts: list[str], ar_model, seconds: float | None, **settings) -> dict:
    return {
        "name": name,
        **settings,
        "seconds": seconds,
        "chars_per_s": None if seconds is None else sum(map(len, texts)) / seconds,
        "bits_per_char": bits_per_char(ar_model, ids),
        "entropy_bits": char_entropy(texts),
        "longest_repeat": max(longest_repeat(t) for t in texts),
        "distinct_bigrams": distinct_bigrams(texts),
        "first_sample": texts[0][:200],
    }


def goals(row: dict, ar_bpc: float, real_entropy: float) -> dict:
    """Each goal: its value, the bound and whether it is met."""
    values = {
        "bpc_ratio": row["bits_per_char"] / ar_bpc,
        "entropy_gap": abs(row["entropy_bits"] - real_entropy) / real_entropy,
        "longest_repeat": row["longest_repeat"],
    }
    return {k: {"value": v, "max": GOALS[k], "met": bool(v <= GOALS[k])} for k, v in values.items()}


# -- rows ---------------------------------------------------------------------------------------
def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def real_row(ckpt, samples: int, length: int, ar_model) -> dict:
    val = prepare_tokens(ckpt.config.data, ckpt.tokenizer).val
    starts = np.linspace(0, len(val) - length, samples).round().astype(np.int64)
    ids = torch.from_numpy(np.stack([val[s : s + length] for s in starts]).astype(np.int64))
    texts = [ckpt.tokenizer.decode(row) for row in ids.tolist()]
    settings = dict(kind="real", sampler=None, eta=None, steps=None, temperature=None, top_p=None, batched=None)
    return measure("real text (validation)", ids, texts, ar_model, None, **settings)


def ar_row(ckpt, model, samples: int, length: int, seed: int) -> dict:
    tok = ckpt.tokenizer
    start = torch.tensor(tok.encode("\n") or [0]).expand(samples, -1)  # (samples, 1)
    gen = torch.Generator().manual_seed(seed)
    block = ckpt.config.data.block_size
    ids, seconds = timed(lambda: sample_causal(model, tok.special_ids, start, length, block, 1.0, 1.0, gen))
    texts = [tok.decode(row) for row in ids.tolist()]
    settings = dict(kind="ar", sampler="kv_cache", eta=None, steps=None, temperature=1.0, top_p=1.0, batched=True)
    return measure("AR twin", ids, texts, model, seconds, **settings)


def diffusion_row(ckpt, model, ar_model, setting, samples: int, length: int, seed: int) -> dict:
    sampler, eta, steps, temperature, top_p = setting
    vocab = MaskVocab.of(ckpt.tokenizer)
    x = torch.full((samples, length), vocab.mask_id)
    gen = torch.Generator().manual_seed(seed)
    kwargs = {"sampler": sampler} if eta is None else {"sampler": sampler, "eta": eta}
    ids, seconds = timed(lambda: unmask(model, x, vocab, steps, temperature, top_p, gen, **kwargs))
    texts = [ckpt.tokenizer.decode(row) for row in ids.tolist()]
    label = sampler if eta is None else f"{sampler} eta={eta}"
    settings = dict(
        kind="diffusion", sampler=sampler, eta=eta, steps=steps, temperature=temperature, top_p=top_p, batched=True
    )
    return measure(label, ids, texts, ar_model, seconds, **settings)


# -- table --------------------------------------------------------------------------------------
def mark(goal: dict, text: str) -> str:
    return f"[green]{text} ✓[/]" if goal["met"] else f"[red]{text} ✗[/]"


def table_of(rows: list[dict], samples: int, length: int):
    from rich.table import Table

    table = Table(title=f"generation: {samples} samples x {length} chars per row", caption=CONDITIONING)
    columns = ("row", "steps", "T / top-p", "batched", "chars/s", "bits/char", "/ AR", "entropy", "vs real", "max rep")
    for col in (*columns, "bigrams", "goals"):
        table.add_column(col, justify="left" if col == "row" else "right")
    for row in rows:
        g = row["goals"]
        table.add_row(
            ("* " if row.get("best") else "") + row["name"],
            "-" if row.get("steps") is None else str(row["steps"]),
            "-" if row["kind"] == "real" else f"{row['temperature']:g} / {row['top_p']:g}",
            "-" if row["batched"] is None else ("yes" if row["batched"] else "no"),
            "-" if row["chars_per_s"] is None else f"{row['chars_per_s']:,.0f}",
            f"{row['bits_per_char']:.3f}",
            mark(g["bpc_ratio"], f"{g['bpc_ratio']['value']:.2f}"),
            f"{row['entropy_bits']:.3f}",
            mark(g["entropy_gap"], f"{g['entropy_gap']['value']:.1%}"),
            mark(g["longest_repeat"], str(row["longest_repeat"])),
            f"{row['distinct_bigrams']:.3f}",
            f"{row['goals_met']}/3",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffusion", type=Path, default=Path("runs/shakespeare_char"), help="masked-diffusion run")
    parser.add_argument("--ar", type=Path, default=Path("runs/shakespeare_char_ar"), help="its autoregressive twin")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--length", type=int, default=256, help="characters per sample (<= both blocks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", choices=("quick", "medium", "full"), default="full")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 samples of 64 chars, the quick grid")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "generation.json")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.length, args.grid = 4, min(args.length, 64), "quick"
    if args.threads:
        torch.set_num_threads(args.threads)

    diff_ckpt, ar_ckpt = load_checkpoint(args.diffusion), load_checkpoint(args.ar)
    if diff_ckpt.config.model.causal or not ar_ckpt.config.model.causal:
        parser.error("--diffusion must be a bidirectional (masked-diffusion) LM and --ar a causal one")
    if diff_ckpt.tokenizer.fingerprint() != ar_ckpt.tokenizer.fingerprint():
        parser.error("the two runs use different tokenizers")
    block = min(diff_ckpt.config.data.block_size, ar_ckpt.config.data.block_size)
    if not 2 <= args.length <= block:
        parser.error(f"--length must be in [2, {block}] (the smaller block of the two runs)")
    diff_model, ar_model = diff_ckpt.build_model(), ar_ckpt.build_model()

    rows = [real_row(diff_ckpt, args.samples, args.length, ar_model)]
    rows.append(ar_row(ar_ckpt, ar_model, args.samples, args.length, args.seed))
    grid = {"quick": QUICK_GRID, "medium": MEDIUM_GRID, "full": FULL_GRID}[args.grid]
    for setting in grid:
        rows.append(diffusion_row(diff_ckpt, diff_model, ar_model, setting, args.samples, args.length, args.seed))

    ar_bpc, real_entropy = rows[1]["bits_per_char"], rows[0]["entropy_bits"]
    for row in rows:
        row["goals"] = goals(row, ar_bpc, real_entropy)
        row["goals_met"] = sum(g["met"] for g in row["goals"].values())
    best = max(
        (r for r in rows if r["kind"] == "diffusion"), key=lambda r: (r["goals_met"], -r["goals"]["bpc_ratio"]["value"])
    )
    for row in rows:
        row["best"] = row is best

    result = {
        "benchmark": "generation",
        "quick": args.quick,
        "grid": args.grid,
        "runs": {"diffusion": str(diff_ckpt.directory), "ar": str(ar_ckpt.directory)},
        "samples": args.samples,
        "length": args.length,
        "seed": args.seed,
        "conditioning": CONDITIONING,
        "goals": {
            "bpc_ratio": "bits/char / the AR samples' bits/char <= 1.15",
            "entropy_gap": "|entropy - real entropy| / real entropy <= 0.05",
            "longest_repeat": "longest run of one repeated word <= 2",
        },
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
        "versions": {"torch": torch.__version__},
        "rows": rows,
        "best": {"index": rows.index(best), "row": best["name"], "goals_met": best["goals_met"]},
    }
    report(table_of(rows, args.samples, args.length), result, args.out)
    setting = f"steps {best['steps']}, T {best['temperature']:g}, top-p {best['top_p']:g}"
    print(f"best diffusion row: {best['name']} ({setting}), {best['goals_met']}/3 goals; its first sample:")
    print(best["first_sample"])


if __name__ == "__main__":
    main()
