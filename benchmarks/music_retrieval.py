"""Retrieval vs random vs generated configs on the TEST split, judged by the offline audio scorer.

For every TEST row (a vibe the map never saw), three configs are scored against the vibe:
- retrieval: the config of the nearest vibe in the map (`assay music map`, built from the other splits);
- random: a uniformly random valid config (seeded), the floor;
- generated: the config the LLM pipeline selected for that row (`config_payload`), when it has one.

    python benchmarks/music_retrieval.py --scored-dir runs/synth/scored --map runs/synth/map

Prints the table (mean audio score, its standard error, ratio to random) and writes
benchmarks/results/music_retrieval.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assay.stats import mean_se  # noqa: E402
from common import RESULTS, report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scored-dir", type=Path, required=True, help="Folder with TEST.jsonl (scored or configs).")
    parser.add_argument("--map", type=Path, required=True, help="A map made by `assay music map` (not from TEST).")
    parser.add_argument("--limit", type=int, default=None, help="Use at most N TEST rows.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=8.0, help="Seconds rendered per config.")
    parser.add_argument("--out", type=Path, default=RESULTS / "music_retrieval.json")
    args = parser.parse_args()

    from rich.table import Table

    from assay.io import read_jsonl
    from assay.music.retrieval import RetrievalMap, random_payload
    from assay.synth.scorers.audio import AudioScorer

    rows = [r for r in read_jsonl(args.scored_dir / "TEST.jsonl") if isinstance(r.get("vibe_original"), str)]
    rows.sort(key=lambda r: r["row_id"])  # output files are in completion order; random draws follow this order
    rows = rows[: args.limit] if args.limit else rows
    if not rows:
        sys.exit("error: no TEST rows")
    retrieval_map = RetrievalMap.load(args.map)
    if any(e["split"] == "TEST" for e in retrieval_map.entries):
        sys.exit("error: the map contains TEST rows; build it from the other splits")
    scorer = AudioScorer(duration=args.duration)
    rng = random.Random(args.seed)
    vibes = [r["vibe_original"] for r in rows]
    start = time.perf_counter()
    nearest = retrieval_map.suggest_many(vibes, k=1)
    retrieval_s = (time.perf_counter() - start) / len(rows)
    scores: dict[str, list[float]] = {"retrieval": [], "random": [], "generated": []}
    neighbour_sim = []
    for row, vibe, top in zip(rows, vibes, nearest, strict=True):
        scores["retrieval"].append(scorer.score(vibe, top[0].entry["config_payload"])["final_score"])
        neighbour_sim.append(top[0].similarity)
        scores["random"].append(scorer.score(vibe, random_payload(rng))["final_score"])
        if row.get("config_payload"):
            scores["generated"].append(scorer.score(vibe, row["config_payload"])["final_score"])

    base = mean_se(scores["random"])[0]
    table = Table(title=f"Audio-scorer mean on TEST ({len(rows)} vibes; map of {len(retrieval_map.entries)})")
    for col in ("source", "rows", "mean", "± s.e.", "Δ vs random", "ratio to random"):
        table.add_column(col, justify="left" if col == "source" else "right")
    result = {"test_rows": len(rows), "map_entries": len(retrieval_map.entries), "sources": {}}
    for name, values in scores.items():
        mean, se = mean_se(values)
        ratio = mean / base if base else float("nan")
        delta = mean - base
        result["sources"][name] = {
            "rows": len(values),
            "mean": mean,
            "se": se,
            "delta_vs_random": delta,
            "ratio_to_random": ratio,
        }
        table.add_row(name, str(len(values)), f"{mean:.4f}", f"{se:.4f}", f"{delta:+.4f}", f"{ratio:.2f}")
    result["mean_neighbour_similarity"] = mean_se(neighbour_sim)[0]
    result["retrieval_seconds_per_query"] = retrieval_s
    result["audio_duration_s"] = args.duration
    report(table, result, args.out)


if __name__ == "__main__":
    main()
