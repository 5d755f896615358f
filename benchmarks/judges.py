"""Judges against the likelihood baseline, on their validation stream and on text they never saw.

One run: a synthetic stream from the demo's judge config (`-c judge_shakespeare`; the LM of
`--lm` rewrites part of real tiny-shakespeare passages), a second stream made the same way from the
`heldout` corpus (plays of the complete works that tiny-shakespeare lacks, and KJV books: text
outside the LM's and the judges' training data), then for each variant a sequence scorer and a
token classifier trained on the first stream and evaluated on both (`assay eval RUN --stream`).
The baseline (GLTR-style mean log-probability under the LM, assay.judges.baseline) is computed on
the same samples; its direction is learned on the judges' training stream.

Variants (overrides of the judge config; a finished run of the same variant is reused):
    plain          the config as shipped before issue 17: fine-tuned from the LM, 300 steps
    features       + the LM's per-token log-probabilities as input features (assay.judges.features)
    features g2    the same from 2 masked passes per text instead of 4 (half the feature cost)
    features long  features, 3x the steps
    long           plain, 3x the steps
    multi-task     a scorer that scores every token (pooling = "tokens": the sequence score is the
                   mean token probability) and learns from the token labels too

    python benchmarks/judges.py --lm runs/shakespeare_char                 # every variant
    python benchmarks/judges.py --lm runs/shakespeare_char --variants plain,features
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from assay.configs import resolve
from common import RESULTS, choose, report  # benchmarks/common.py (the script's folder is on sys.path)

CONFIG = resolve("judge_shakespeare")
PLAIN = ["features.lm_features=false"]
FEATURES = ["features.lm_features=true", "features.groups=4"]
# name -> (overrides, which judges)
VARIANTS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "plain": (PLAIN, ("scorer", "inspector")),
    "features": (FEATURES, ("scorer", "inspector")),
    "features g2": (["features.lm_features=true", "features.groups=2"], ("scorer",)),
    "features long": ([*FEATURES, "train.max_iters=900", "train.eval_interval=300"], ("scorer",)),
    "long": ([*PLAIN, "train.max_iters=900", "train.eval_interval=300"], ("scorer",)),
    "multi-task": ([*PLAIN, "model.pooling=tokens"], ("scorer",)),
    "features multi-task": ([*FEATURES, "model.pooling=tokens"], ("scorer",)),
    "features multi-task long": ([*FEATURES, "model.pooling=tokens", "train.max_iters=900"], ("scorer",)),
}
JUDGES = {
    "scorer": ["model.mode=sequence_scorer"],
    "inspector": ["model.mode=token_classifier"],
}


def assay(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "assay", *args],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    if proc.returncode:
        raise SystemExit(f"assay {' '.join(args[:3])} ... failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def produce(out: Path, lm: Path, shards: int, extra: list[str]) -> float:
    if (out / "meta.json").exists() and len(list((out / "train").glob("*.safetensors"))) >= shards:
        return 0.0  # already there
    started = time.perf_counter()
    common = [f"stream.lm={lm}", f"data.stream={out}", "stream.max_backlog=none"]
    assay("data", "produce", "-c", str(CONFIG), *sets([*common, *extra]), "--workers", "2", "--shards", str(shards))
    return time.perf_counter() - started


def train_judge(run: Path, stream: Path, lm: Path, overrides: list[str]) -> dict:
    done = run / "bench.json"
    if done.exists() and json.loads(done.read_text())["overrides"] == overrides:
        return json.loads(done.read_text())["result"]
    started = time.perf_counter()
    common = [f"run.out_dir={run}", f"data.stream={stream}", f"stream.lm={lm}", f"model.init_from={lm}"]
    assay("train", "--overwrite", "-c", str(CONFIG), *sets([*common, *overrides]))
    result = {"seconds": time.perf_counter() - started, "own": json.loads((run / "eval.json").read_text())}
    done.write_text(json.dumps({"overrides": overrides, "result": result}))
    return result


def inspector_as_scorer(run: Path, stream: Path) -> dict:
    """The token classifier read as a sequence judge: its mean p_replaced over a text's tokens
    (what `Judge.score` gives without a scorer), against the true fraction rewritten."""
    import numpy as np

    from assay import stats
    from assay.data.stream import load_val
    from assay.data.tokenizer import load_tokenizer
    from assay.judges import Judge

    val, tok = load_val(stream), load_tokenizer(stream / "tokenizer")
    texts = [tok.decode(row.tolist()) for row in val["idx"]]
    pred = np.array([r["score"] for r in Judge.load(run).score(texts, batch_size=64)])
    true = val["score"].numpy().astype(np.float64)
    return {"val_pearson": stats.pearson(pred, true), "val_spearman": stats.spearman(pred, true)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm", type=Path, default=Path("runs/shakespeare_char"), help="the masked-diffusion LM run")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--shards", type=int, default=60, help="train shards of the judges' stream (64 samples each)")
    ap.add_argument("--heldout-val-shards", type=int, default=6, help="validation shards of the held-out stream")
    ap.add_argument("--runs", type=Path, default=Path("runs/bench/judges"))
    ap.add_argument("--out", type=Path, default=RESULTS / "judges.json")
    args = ap.parse_args()
    names = choose(args.variants, VARIANTS, "variants")
    lm = args.lm.resolve()
    stream, heldout = args.runs / "stream", args.runs / "heldout"
    produce_s = produce(stream, lm, args.shards, [])
    heldout_s = produce(heldout, lm, 1, ["data.corpus=heldout", f"stream.val_shards={args.heldout_val_shards}"])
    print(f"streams ready ({produce_s:.0f} s, held-out {heldout_s:.0f} s)", flush=True)

    from rich.table import Table

    table = Table(title="judges vs the likelihood baseline (judge / baseline)")
    for col in ("variant", "judge", "train s", "val pearson", "val spearman", "held-out pearson",
                "held-out spearman", "val AUROC", "held-out AUROC"):  # fmt: skip
        table.add_column(col)
    rows = []
    for name in names:
        overrides, judges = VARIANTS[name]
        for judge in judges:
            run = args.runs / name.replace(" ", "_") / judge
            result = train_judge(run, stream, lm, [*JUDGES[judge], *overrides])
            other = json.loads(assay("eval", str(run), "--stream", str(heldout), "--json"))
            row = {
                "variant": name,
                "judge": judge,
                "seconds": result["seconds"],
                "val": result["own"],
                "heldout": other,
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k in ("variant", "judge", "seconds")}), flush=True)

            def pair(d, key):
                if f"val_{key}" not in d:
                    return ""
                base = d.get(f"baseline_{key}")
                return f"{d[f'val_{key}']:.4f} / {base:.4f}" if base is not None else f"{d[f'val_{key}']:.4f}"

            v, h = row["val"], row["heldout"]
            table.add_row(name, judge, f"{row['seconds']:.0f}", pair(v, "pearson"), pair(v, "spearman"),
                          pair(h, "pearson"), pair(h, "spearman"), pair(v, "auroc"), pair(h, "auroc"))  # fmt: skip
            if judge == "inspector":  # its mean p_replaced as a sequence score
                v, h = inspector_as_scorer(run, stream), inspector_as_scorer(run, heldout)
                row["as_scorer"] = {"val": v, "heldout": h}
                table.add_row(name, "inspector mean p", "", pair(v, "pearson"), pair(v, "spearman"),
                              pair(h, "pearson"), pair(h, "spearman"), "", "")  # fmt: skip
    report(table, {"benchmark": "judges", "lm": str(lm), "shards": args.shards, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
