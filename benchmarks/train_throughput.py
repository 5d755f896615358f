"""Training throughput: assay's transformer vs Hugging Face `BertForMaskedLM`, same run, same shapes.

For each shape both models get identical masked-LM batches (a per-sample mask rate ~ U(0, 1),
labels -100 where not masked) and take full AdamW training steps (forward, backward, update),
measured alternately so that machine noise hits both alike. Reported per model: tokens/s and
model FLOPs utilisation (MFU) against the fp32 matmul rate measured on this machine in the
same run; and the ratio assay / HF.

    python benchmarks/train_throughput.py            # default shapes, writes benchmarks/results/
    python benchmarks/train_throughput.py --quick    # tiny shapes, a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from assay.model import ModelConfig, Transformer
from common import RESULTS, report  # benchmarks/common.py (the script's folder is on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

VOCAB = 69  # tiny-shakespeare characters + 4 specials

SHAPES = [  # (layers, width, heads, seq_len, batch)
    (4, 128, 4, 256, 32),  # the shipped shakespeare_char config
    (6, 384, 6, 256, 8),  # nanoGPT's shakespeare_char size
]
QUICK = [(2, 64, 2, 64, 4)]


def matmul_peak(seconds: float = 2.0, n: int = 1024) -> float:
    """Sustained fp32 matmul FLOP/s of this machine (the MFU denominator)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def batch(B: int, T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB - 4, (B, T), generator=g)
    rates = torch.rand(B, 1, generator=g)
    mask = torch.rand(B, T, generator=g) < rates
    inputs = x.masked_fill(mask, VOCAB - 3)  # [MASK]
    labels = x.masked_fill(~mask, -100)
    return inputs, labels


def build_assay(L, d, H, T):
    return Transformer(ModelConfig(n_layer=L, n_head=H, n_embd=d, vocab_size=VOCAB, dropout=0.0))


def build_hf(L, d, H, T):
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=d,
        num_hidden_layers=L,
        num_attention_heads=H,
        intermediate_size=4 * d,
        max_position_embeddings=T,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="sdpa",
    )
    return BertForMaskedLM(cfg)


def step_fn(model, kind, inputs, labels):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        if kind == "assay":
            _, loss = model(inputs, labels)
        else:
            loss = model(input_ids=inputs, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def flops_per_token(model, T, d, L) -> float:
    """6 x (matmul parameters, incl. the vocabulary projection) + attention scores, fwd + bwd."""
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    # assay ties the head to the embedding (an nn.Linear, counted above); HF's decoder is a Linear too
    return 6 * n + 12 * L * d * T


def measure(shape, repeats: int, steps: int) -> dict:
    L, d, H, T, B = shape
    inputs, labels = batch(B, T)
    torch.manual_seed(0)
    models = {"assay": build_assay(L, d, H, T), "hf_bert": build_hf(L, d, H, T)}
    steps_fns = {k: step_fn(m, k, inputs, labels) for k, m in models.items()}
    for fn in steps_fns.values():  # warm-up
        for _ in range(2):
            fn()
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(repeats):
        for name, fn in steps_fns.items():  # alternate: A, B, A, B, ...
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - start) / steps)
    out = {"shape": dict(layers=L, width=d, heads=H, seq_len=T, batch=B)}
    for name, model in models.items():
        sec = statistics.median(times[name])
        out[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "seconds_per_step": sec,
            "tokens_per_s": B * T / sec,
            "flops_per_token": flops_per_token(model, T, d, L),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repeat (smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "train_throughput.json")
    args = parser.parse_args()
    shapes, repeats, steps = (QUICK, 1, 2) if args.quick else (SHAPES, args.repeats, args.steps)

    peak = matmul_peak(0.5 if args.quick else 3.0)
    rows = []
    for shape in shapes:
        row = measure(shape, repeats, steps)
        for name in ("assay", "hf_bert"):
            r = row[name]
            r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / peak
        row["ratio_tokens_per_s"] = row["assay"]["tokens_per_s"] / row["hf_bert"]["tokens_per_s"]
        rows.append(row)

    from rich.table import Table

    table = Table(title=f"training throughput (fp32, {torch.get_num_threads()} threads, peak {peak / 1e9:.0f} GFLOP/s)")
    for col in ("L x d / heads", "T x B", "assay tok/s", "assay MFU", "HF BERT tok/s", "HF MFU", "assay / HF"):
        table.add_column(col, justify="right")
    for row in rows:
        s, a, h = row["shape"], row["assay"], row["hf_bert"]
        table.add_row(
            f"{s['layers']} x {s['width']} / {s['heads']}",
            f"{s['seq_len']} x {s['batch']}",
            f"{a['tokens_per_s']:,.0f}",
            f"{a['mfu']:.1%}",
            f"{h['tokens_per_s']:,.0f}",
            f"{h['mfu']:.1%}",
            f"{row['ratio_tokens_per_s']:.2f}x",
        )

    import transformers

    result = {
        "benchmark": "train_throughput",
        "quick": args.quick,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": torch.get_num_threads(),
        },
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "matmul_peak_flops": peak,
        "repeats": repeats,
        "steps_per_repeat": steps,
        "rows": rows,
    }
    report(table, result, args.out)


if __name__ == "__main__":
    main()
