"""Can the offline audio scorer tell a config made for a vibe from one made for another? Its
matched-vs-shuffled AUROC (`quality.description_auroc`: MiniLM cosine of the vibe and the rendered
sound's description), against a ceiling in the same run.

Data:
- `made_for_vibes`: benchmarks/data/configs_made_for_vibes.json, 6 moods x (1 config written for the
  mood, 3 vibes): each vibe with its mood's config (matched) against every other mood's (shuffled).
  The ceiling: the same AUROC when the "description" is the mood's own words (`CEILING`), what a
  perfect listener that names the mood would reach with MiniLM; the gap is the audio side's.
- `--scored-dir DIR` (repeatable): the rows of a `synth configs` / `synth score` folder, every valid
  candidate of a row against those of every other text's rows (no ceiling: nobody named their mood).

    python benchmarks/audio_scorer.py --scored-dir runs/synth/scored

Prints the table and writes benchmarks/results/audio_scorer.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "configs_made_for_vibes.json"
CEILING = {
    "grief": "sad, solemn and lonely",
    "peace": "calm, peaceful and tender",
    "mystery": "pensive, mysterious and eerie",
    "hope": "gentle, warm and hopeful",
    "conflict": "tense, restless and stormy",
    "celebration": "joyful, lively and festive",
}


def made_for_vibes() -> tuple[list[str], list[list[dict]], list[str]]:
    """(vibes, [[its config]], mood keys) of the hand-made set."""
    data = json.loads(DATA.read_text())
    vibes, configs, keys = [], [], []
    for mood in data["moods"]:
        config = data["base"] | mood["config"]
        for vibe in mood["vibes"]:
            vibes.append(vibe)
            configs.append([config])
            keys.append(mood["mood"])
    return vibes, configs, keys


def pipeline_rows(folder: Path) -> tuple[list[str], list[list[dict]], list[str]]:
    """(vibes, valid candidates per row, text keys) of a configs or scored folder."""
    from assay.synth.quality import read_rows, valid_candidates

    vibes, configs, keys = [], [], []
    for row in read_rows(folder):
        cands = valid_candidates(row)
        if isinstance(row.get("vibe_original"), str) and cands:
            vibes.append(row["vibe_original"])
            configs.append(cands)
            keys.append(f"{row['dataset']}/{row['id_in_dataset']}")
    return vibes, configs, keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scored-dir", type=Path, action="append", default=[], help="A configs or scored folder.")
    parser.add_argument("--duration", type=float, default=8.0, help="Seconds rendered per config.")
    parser.add_argument("--out", type=Path, default=RESULTS / "audio_scorer.json")
    args = parser.parse_args()

    from rich.table import Table

    from assay.errors import AssayError
    from assay.synth.quality import description_auroc
    from assay.synth.scorers.audio import AudioScorer

    sets = {"made_for_vibes": made_for_vibes()}
    for folder in args.scored_dir:
        if not folder.is_dir():
            sys.exit(f"error: {folder} is not a folder")
        sets[str(folder)] = pipeline_rows(folder)

    table = Table(title="Audio scorer: matched vs shuffled vibe-config pairs (AUROC; 0.5 = chance)")
    for col in ("data", "rows", "configs", "audio scorer", "ceiling (the mood's words)", "scorer / ceiling"):
        table.add_column(col, justify="left" if col == "data" else "right")
    result: dict = {"duration_s": args.duration, "sets": {}}
    scorer = AudioScorer(duration=args.duration)  # what `synth score` renders and describes
    started = time.perf_counter()
    for name, (vibes, configs, keys) in sets.items():
        described: dict[str, str] = {}
        for cands in configs:
            for config in cands:
                key = json.dumps(config, sort_keys=True)
                if key not in described:
                    try:
                        described[key] = scorer.describe(config)[0]
                    except AssayError as exc:
                        sys.exit(f"error: {name}: a config the renderer cannot read: {exc}")
        texts = [[described[json.dumps(c, sort_keys=True)] for c in cands] for cands in configs]
        auroc = description_auroc(vibes, texts, keys)
        ceiling = description_auroc(vibes, [[CEILING[k]] for k in keys], keys) if name == "made_for_vibes" else None
        result["sets"][name] = {
            "rows": len(vibes),
            "configs": len(described),
            "auroc": auroc,
            "ceiling_auroc": ceiling,
            "ratio_to_ceiling": auroc / ceiling if ceiling else None,
        }
        table.add_row(
            name,
            str(len(vibes)),
            str(len(described)),
            f"{auroc:.3f}",
            f"{ceiling:.3f}" if ceiling else "-",
            f"{auroc / ceiling:.2f}" if ceiling else "-",
        )
    result["seconds"] = time.perf_counter() - started
    report(table, result, args.out)


if __name__ == "__main__":
    main()
