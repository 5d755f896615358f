"""`assay experiment connectives`: does targeted masking of logical connectives help?

Every strategy of the config (one of them the baseline, `strategy = 'random'`: random masking at
the same overall rate) trains the same model with the same budget, data order and tokenizer,
once per seed. Each run is selected on its validation loss (the same random masks for every
strategy), then evaluated once on the held-out *test* books (`assay.experiments.connectives.evaluate`).
Finished runs are skipped, an interrupted one resumes from its last checkpoint, so the command
can be re-run until it completes. Writes into `experiment.out_dir`:

    tokenizer/          the BPE trained on the training books, shared by every run
    {strategy}/seed-{s}/  each run (checkpoints, metrics.jsonl) and its test.json
    coverage.json       per connective: occurrences found by the regex vs masked as whole words
    results.json        everything measured; results.md the tables; *.png the plots
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from assay.config import to_dict
from assay.data.tokenizer import build_tokenizer, load_tokenizer
from assay.data.tokens import split_texts
from assay.errors import ConfigError, DataError
from assay.experiments.connectives.config import ConnectivesExperimentConfig, ConnectiveTrainingConfig, run_dir
from assay.experiments.connectives.evaluate import Occurrences, other_token_loss, recovery
from assay.experiments.connectives.inventory import coverage, load_inventory
from assay.experiments.connectives.policy import ConnectiveStats
from assay.experiments.connectives.task import TASKS, annotate_splits
from assay.io import JSON_MAX, atomic_write, atomic_write_json, atomic_write_text, check_size, read_text_file
from assay.train.checkpoint import load_checkpoint
from assay.train.distributed import resolve_device
from assay.train.trainer import config_for_resume, train


def run_experiment(cfg: ConnectivesExperimentConfig, log=print) -> dict[str, Any]:
    """Train and evaluate what is missing, then write the results; returns results.json's content."""
    inventory = load_inventory(next(iter(cfg.strategies.values())).inventory)  # a bad file fails before any write
    out = Path(cfg.experiment.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "experiment.json", to_dict(cfg))
    _, train_docs, texts = split_texts(cfg.data, test=True)
    tok_dir = out / "tokenizer"
    if not tok_dir.exists():
        source = [d.text for d in train_docs]
        build_tokenizer(cfg.data.tokenizer, source, cfg.data.bpe_vocab_size, cfg.data.tokenizer_path).save(tok_dir)
    tokenizer = load_tokenizer(tok_dir)
    tokenizer_path = str(tok_dir / "tokenizer.json") if cfg.data.tokenizer == "bpe" else None

    annotated = annotate_splits({k: texts[k] for k in ("train", "val")}, tokenizer, inventory)
    test = Occurrences(texts["test"], tokenizer, inventory)  # tokenised once, for every run
    stats = ConnectiveStats.of(annotated["train"][1], inventory.class_of)
    cov = {split: coverage(inventory, ann) for split, (_, ann) in annotated.items()}
    cov["test"] = coverage(inventory, test.ann)
    atomic_write_json(out / "coverage.json", cov)

    names = cfg.experiment.only or list(cfg.strategies)
    for name in names:
        for seed in cfg.experiment.seeds:
            rd = run_dir(cfg, name, seed)
            _check_same_config(rd, cfg.run_config(name, seed, tokenizer_path))
            if (rd / "test.json").exists():
                log(f"{name} seed {seed}: done, skipped")
                continue
            if not (rd / "eval.json").exists():
                if (rd / "last").exists():
                    ckpt = load_checkpoint(rd, prefer="last", tasks=TASKS)
                    log(f"{name} seed {seed}: resuming at iter {ckpt.state['iter']}")
                    train(config_for_resume(ckpt, rd, []), resume=ckpt, tasks=TASKS)
                else:
                    log(f"{name} seed {seed}: training ({cfg.strategies[name].strategy})")
                    train(cfg.run_config(name, seed, tokenizer_path), tasks=TASKS)
                if not (rd / "eval.json").exists():
                    raise ConfigError(f"run {rd} stopped before finishing; run the experiment again to resume it")
            log(f"{name} seed {seed}: evaluating on the test books")
            figures = evaluate_run(
                rd, test, inventory, stats.form_counts, cfg.experiment.eval_batch_size, resolve_device(cfg.run.device)
            )
            atomic_write_json(rd / "test.json", figures)

    results = collect(cfg, inventory, stats, cov)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", render_markdown(results))
    plot_results(results, out)
    return results


def _check_same_config(rd: Path, wanted: ConnectiveTrainingConfig) -> None:
    """A finished or started run is reused only if it was trained with this config."""
    saved_path = rd / "config.json"
    if not saved_path.exists():
        return
    saved, new = _read_json(saved_path), to_dict(wanted)
    for section in ("data", "model", "masking", "train"):
        a, b = dict(saved.get(section, {})), dict(new[section])
        if section == "model":  # filled in from the tokenizer when the run started (aux_classes: older runs)
            for key in ("vocab_size", "aux_classes"):
                a.pop(key, None), b.pop(key, None)
        if a != b:
            changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise ConfigError(
                f"{rd} was trained with other {section} settings ({', '.join(changed)}): "
                "use a new experiment.out_dir for a changed experiment"
            )


def _read_json(path: Path) -> Any:
    """A JSON file the experiment wrote earlier (a run's config.json, eval.json, test.json)."""
    try:
        return json.loads(read_text_file(check_size(path, JSON_MAX, "a run's JSON file")))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is corrupt ({exc.msg}): delete that run to train it again") from None


def evaluate_run(rd: Path, test, inventory, form_counts, batch_size: int, device) -> dict[str, Any]:
    """A run's best checkpoint on the test text (`Occurrences`, made with the experiment's tokenizer)."""
    ckpt = load_checkpoint(rd, prefer="best", tasks=TASKS)
    model = ckpt.build_model(device).eval()
    block = ckpt.config.data.block_size
    res = recovery(model, test, inventory, form_counts, block, device, batch_size)
    res["other_token_loss"] = other_token_loss(model, test, block, device)
    res["val"] = _read_json(rd / "eval.json")
    res["best_iter"] = int(ckpt.state["iter"])
    return res


# -- results -----------------------------------------------------------------------------------
METRICS = ("top1", "top5", "class_accuracy")


def _mean_sd(values: list[float]) -> dict[str, Any]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "values": a.tolist()}


def collect(cfg: ConnectivesExperimentConfig, inventory, stats, cov) -> dict[str, Any]:
    """Every finished run's test figures, per strategy: per seed, mean and sd over seeds, and the
    paired difference to the baseline (same seed)."""
    seeds = cfg.experiment.seeds
    per: dict[str, dict[int, dict]] = {}
    for name in cfg.strategies:
        runs = {s: run_dir(cfg, name, s) / "test.json" for s in seeds}
        done = {s: _read_json(p) for s, p in runs.items() if p.exists()}
        if done:
            per[name] = done
    if not per:
        raise ConfigError("no finished runs to report")
    baseline = next(n for n, s in cfg.strategies.items() if s.strategy == "random")
    first = next(iter(next(iter(per.values())).values()))
    results: dict[str, Any] = {
        "seeds": seeds,
        "baseline": baseline,
        "test_occurrences": first["occurrences"],
        "mean_candidates": first["mean_candidates"],
        "frequency_baselines": {
            k: {m: first[k][m] for m in METRICS} for k in ("majority", "unigram", "class_conditional")
        },
        "frequency_baselines_per_class": {
            k: first[k]["per_class"] for k in ("majority", "unigram", "class_conditional")
        },
        "strategies": {},
        "coverage": cov,
        "train_connective_occurrences": int(stats.form_counts.sum()),
    }
    for name, done in per.items():
        st = cfg.strategies[name]
        entry: dict[str, Any] = {"strategy": st.strategy, "params": to_dict(st), "seeds": sorted(done)}
        for m in METRICS:
            entry[m] = _mean_sd([done[s]["model"][m] for s in sorted(done)])
        entry["other_token_loss"] = _mean_sd([done[s]["other_token_loss"] for s in sorted(done)])
        entry["val_loss"] = _mean_sd([done[s]["val"]["val_loss"] for s in sorted(done)])
        entry["val_connective_loss"] = _mean_sd([done[s]["val"]["val_connective_loss"] for s in sorted(done)])
        entry["per_class_top1"] = {
            c: _mean_sd([done[s]["model"]["per_class"][c]["top1"] for s in sorted(done)])["mean"]
            for c in done[sorted(done)[0]]["model"]["per_class"]
        }
        entry["per_connective_top1"] = {
            f: _mean_sd([done[s]["model"]["per_connective"][f]["top1"] for s in sorted(done)])["mean"]
            for f in done[sorted(done)[0]]["model"]["per_connective"]
        }
        entry["per_connective_n"] = {f: v["n"] for f, v in done[sorted(done)[0]]["model"]["per_connective"].items()}
        entry["confusion"] = np.sum([done[s]["confusion"]["matrix"] for s in sorted(done)], axis=0).tolist()
        if name != baseline and baseline in per:
            paired = [s for s in sorted(done) if s in per[baseline]]
            for m in ("top1", "top5", "other_token_loss"):
                get = (lambda r, m=m: r[m]) if m == "other_token_loss" else (lambda r, m=m: r["model"][m])
                diffs = [get(done[s]) - get(per[baseline][s]) for s in paired]
                entry[f"delta_{m}"] = _mean_sd(diffs) if diffs else None
        results["strategies"][name] = entry
    results["classes"] = list(inventory.classes)
    return results


def _pm(d: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    if d is None:
        return "–"
    return f"{d['mean'] * scale:.{digits}f} ± {d['sd'] * scale:.{digits}f}"


def render_markdown(results: dict[str, Any]) -> str:
    n_seeds = len(results["seeds"])
    lines = [
        f"# Connective recovery on the held-out test books ({results['test_occurrences']:,} occurrences)",
        "",
        f"Mean ± sd over seeds {results['seeds']}; top-k and class accuracy in %. Δ = paired difference to "
        f"the baseline ({results['baseline']}) on the same seed. Candidates per occurrence: "
        f"{results['mean_candidates']:.1f} on average (forms with as many tokens as the masked word).",
        "",
        "| model | top-1 | top-5 | class acc. | Δ top-1 | Δ top-5 | other-token loss | Δ other loss | val loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in results["strategies"].items():
        lines.append(
            f"| {name} ({e['strategy']}) | {_pm(e['top1'])} | {_pm(e['top5'])} | {_pm(e['class_accuracy'])} | "
            f"{_pm(e.get('delta_top1'))} | {_pm(e.get('delta_top5'))} | {_pm(e['other_token_loss'], 1, 3)} | "
            f"{_pm(e.get('delta_other_token_loss'), 1, 3)} | {_pm(e['val_loss'], 1, 3)} |"
        )
    for name, b in results["frequency_baselines"].items():
        lines.append(
            f"| {name} (frequency) | {b['top1'] * 100:.1f} | {b['top5'] * 100:.1f} | {b['class_accuracy'] * 100:.1f} "
            "| | | | | |"
        )
    classes = results["classes"]
    lines += ["", "## Top-1 by connective class (%, mean over seeds)", ""]
    lines.append("| model | " + " | ".join(classes) + " |")
    lines.append("|---|" + "---|" * len(classes))
    for name, e in results["strategies"].items():
        lines.append(
            f"| {name} | " + " | ".join(f"{e['per_class_top1'].get(c, math.nan) * 100:.1f}" for c in classes) + " |"
        )
    for name, per_class in results["frequency_baselines_per_class"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{per_class[c]['top1'] * 100:.1f}" if c in per_class else "–" for c in classes)
            + " |"
        )
    first = next(iter(results["strategies"].values()))
    common = sorted(first["per_connective_n"], key=lambda f: -first["per_connective_n"][f])[:15]
    names = list(results["strategies"])
    lines += ["", "## Top-1 of the 15 most frequent test connectives (%, mean over seeds)", ""]
    lines.append("| connective | n | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for f in common:
        cells = " | ".join(
            f"{results['strategies'][n]['per_connective_top1'].get(f, math.nan) * 100:.1f}" for n in names
        )
        lines.append(f"| {f} | {first['per_connective_n'][f]} | {cells} |")
    lines += ["", "## Coverage: occurrences found by the regex vs masked as whole words", ""]
    lines.append("| split | found | masked | coverage |")
    lines.append("|---|---|---|---|")
    for split, rows in results["coverage"].items():
        found, masked = sum(r["found"] for r in rows), sum(r["masked"] for r in rows)
        lines.append(f"| {split} | {found:,} | {masked:,} | {100 * masked / max(found, 1):.2f}% |")
    lines.append("")
    if n_seeds < 2:
        lines.append("Only one seed: the ± columns are 0 and say nothing about the spread.")
    return "\n".join(lines) + "\n"


def plot_results(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["strategies"])
    strat = results["strategies"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, m in zip(axes, ("top1", "top5"), strict=True):
        means = [strat[n][m]["mean"] * 100 for n in names]
        for i, n in enumerate(names):
            ax.scatter(
                [i] * len(strat[n][m]["values"]), np.array(strat[n][m]["values"]) * 100, color="k", s=12, zorder=3
            )
        ax.bar(range(len(names)), means, color="tab:blue", alpha=0.7)
        for (k, b), style in zip(results["frequency_baselines"].items(), (":", "--", "-."), strict=True):
            ax.axhline(b[m] * 100, color="tab:red", linestyle=style, label=f"{k} ({b[m] * 100:.1f})")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel(f"{m} accuracy on test connectives (%)")
        ax.legend(fontsize=8)
    fig.suptitle("Connective recovery, held-out books (bars: mean over seeds, dots: seeds)")
    fig.tight_layout()
    _save(fig, out / "recovery.png")

    classes = results["classes"]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        ax.bar(
            np.arange(len(classes)) + i * width,
            [strat[n]["per_class_top1"].get(c, 0) * 100 for c in classes],
            width,
            label=n,
        )
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes)
    ax.set_ylabel("top-1 (%)")
    ax.legend(fontsize=8)
    ax.set_title("Top-1 by connective class")
    fig.tight_layout()
    _save(fig, out / "per_class.png")

    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False)
    for ax, n in zip(axes[0], names, strict=True):
        mat = np.asarray(strat[n]["confusion"], dtype=np.float64)
        mat = mat / mat.sum(1, keepdims=True).clip(min=1)
        ax.imshow(mat, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(classes)), [c[:5] for c in classes], rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), [c[:5] for c in classes], fontsize=7)
        ax.set_title(n, fontsize=9)
    axes[0][0].set_ylabel("true class")
    fig.suptitle("Class of the top-1 prediction (rows: true class, normalised)")
    fig.tight_layout()
    _save(fig, out / "confusion.png")


def _save(fig, path: Path) -> None:
    """Write a figure atomically (a failed write never leaves a torn PNG over the last one), then close it."""
    import matplotlib.pyplot as plt

    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    finally:
        plt.close(fig)
