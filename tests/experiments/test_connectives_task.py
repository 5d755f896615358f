"""Connective-targeted training and the experiment runner, end to end at toy scale on real KJV books."""

import json
import subprocess

import numpy as np
import pytest

from assay import configs
from assay.config import load_config, validate
from assay.data.kjv import load_kjv
from assay.data.tokens import prepare_tokens, split_texts
from assay.errors import ConfigError
from assay.experiments.connectives.config import ConnectivesExperimentConfig, ConnectiveTrainingConfig
from assay.experiments.connectives.experiment import run_experiment
from assay.experiments.connectives.inventory import load_inventory
from assay.experiments.connectives.task import TASKS, ClassHeadTransformer, ConnectiveTask
from assay.train.checkpoint import load_checkpoint
from assay.train.distributed import Dist
from assay.train.metrics import read_metrics
from assay.train.trainer import config_for_resume, train
from tests.conftest import ROOT, assay_cmd, write_toml

TRAIN, VAL, TEST = ["Genesis.txt", "Matthew.txt", "Romans.txt"], ["Ruth.txt"], ["Jude.txt", "Philemon.txt"]


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    """A folder corpus of six KJV books, one .txt each (small enough for seconds-long runs)."""
    folder = tmp_path_factory.mktemp("kjv")
    texts = {title: text for title, text, _ in load_kjv()}
    for name in TRAIN + VAL + TEST:
        (folder / name).write_text(texts[name.removesuffix(".txt")])
    return folder


def data_section(books):
    return {
        "corpus": str(books),
        "split": "named",
        "val_documents": VAL,
        "test_documents": TEST,
        "tokenizer": "bpe",
        "bpe_vocab_size": 512,
        "block_size": 32,
    }


TRAIN_SECTION = {
    "max_iters": 12,
    "lr_decay_iters": 12,
    "batch_size": 8,
    "eval_interval": 4,
    "eval_blocks": 8,
    "log_interval": 1,
    "warmup_iters": 2,
    "plot": False,
}


def training_config(books, out, stage):
    tree = {
        "run": {"out_dir": str(out), "seed": 3, "threads": 1},
        "data": data_section(books),
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 32},
        "masking": {"stages": [stage]},
        "train": TRAIN_SECTION,
    }
    return validate(ConnectiveTrainingConfig, tree)


def test_training_batches_never_contain_held_out_books(books, tmp_path):
    cfg = training_config(books, tmp_path / "r", {"kind": "connectives", "strategy": "chain", "q": 1.0})
    splits = prepare_tokens(cfg.data)
    task = ConnectiveTask.create(cfg, Dist.from_env("cpu"), "cpu", splits.tokenizer, splits)
    _, _, texts = split_texts(cfg.data, test=True)
    for _ in range(20):
        batch = task.train_batch()
        original = np.where(batch["targets"] != -100, batch["targets"], batch["idx"])
        for row in original:
            snippet = splits.tokenizer.decode(row.tolist())
            assert snippet in texts["train"]
            assert snippet not in texts["val"] and snippet not in texts["test"]


def test_contrastive_run_learns_and_resumes_exactly(books, tmp_path):
    stage = {"kind": "connectives", "strategy": "weighted", "weight_source": "loss", "aux_weight": 0.5}
    full = train(training_config(books, tmp_path / "full", stage), tasks=TASKS)
    assert full.final["val_loss"] < 6.3  # ln(512) = 6.24 at start; the loss falls
    first = training_config(books, tmp_path / "half", stage)
    first.train.max_iters = 8
    train(first, tasks=TASKS)
    ckpt = load_checkpoint(tmp_path / "half", prefer="last", tasks=TASKS)
    model = ckpt.build_model()
    assert isinstance(model, ClassHeadTransformer)  # the class head was built, saved and loaded
    assert model.class_head.out_features == len(load_inventory().classes)
    assert ckpt.state["task"]["policies"][0]["loss_ema"] is not None  # running losses are saved
    train(config_for_resume(ckpt, tmp_path / "half", ["train.max_iters=12"]), resume=ckpt, tasks=TASKS)

    def rows(run):
        return [r for r in read_metrics(tmp_path / run / "metrics.jsonl") if "iter" in r]

    losses = {r["iter"]: r.get("train_loss") for r in rows("full") if "train_loss" in r}
    resumed = {r["iter"]: r.get("train_loss") for r in rows("half") if "train_loss" in r}
    assert list(resumed) == list(range(1, 13)) and resumed == losses  # bit for bit
    evals = [r["val_connective_loss"] for r in rows("half") if "val_connective_loss" in r]
    assert evals == [r["val_connective_loss"] for r in rows("full") if "val_connective_loss" in r]


def experiment_tree(books, out):
    return {
        "experiment": {"out_dir": str(out), "seeds": [1, 2]},
        "data": data_section(books),
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 32},
        "train": TRAIN_SECTION | {"max_iters": 8},
        "run": {"threads": 1},
        "strategies": {
            "baseline": {"strategy": "random", "rate": 0.15},
            "contrastive": {"strategy": "contrastive", "aux_weight": 0.5, "rate": 0.15, "p": 0.5},
        },
    }


def test_experiment_runs_every_strategy_and_seed_then_skips_them(books, tmp_path):
    out = tmp_path / "exp"
    cfg = validate(ConnectivesExperimentConfig, experiment_tree(books, out))
    log = []
    results = run_experiment(cfg, log=log.append)
    for name in ("results.json", "results.md", "coverage.json", "recovery.png", "per_class.png", "confusion.png"):
        assert (out / name).exists(), name
    assert set(results["strategies"]) == {"baseline", "contrastive"}
    contrastive = results["strategies"]["contrastive"]
    assert len(contrastive["top1"]["values"]) == 2 and contrastive["delta_top1"] is not None
    assert contrastive["delta_top1"]["mean"] == pytest.approx(
        contrastive["top1"]["mean"] - results["strategies"]["baseline"]["top1"]["mean"]
    )
    assert 0 <= contrastive["top1"]["mean"] <= contrastive["top5"]["mean"] <= 1
    baselines = results["frequency_baselines"]
    assert baselines["class_conditional"]["top1"] >= baselines["unigram"]["top1"]
    assert baselines["class_conditional"]["class_accuracy"] == 1.0
    for split, rows in results["coverage"].items():  # train, val and test: found == masked
        assert sum(r["found"] for r in rows) == sum(r["masked"] for r in rows) > 0, split
    test = json.loads((out / "contrastive/seed-1/test.json").read_text())
    assert test["tokenisation_mismatches"] == 0 and test["occurrences"] > 50
    assert sum(map(sum, test["confusion"]["matrix"])) == test["occurrences"]
    table = (out / "results.md").read_text()
    assert "| contrastive (contrastive) |" in table and "| unigram (frequency) |" in table
    log.clear()
    run_experiment(cfg, log=log.append)  # everything finished: nothing is trained again
    assert sum("skipped" in line for line in log) == 4 and not any("training" in line for line in log)
    changed = experiment_tree(books, out)
    changed["train"]["max_iters"] = 9  # finished runs of another budget must not be mixed in
    with pytest.raises(ConfigError, match="other train settings"):
        run_experiment(validate(ConnectivesExperimentConfig, changed), log=log.append)


def test_experiment_cli_rejects_configs_without_a_baseline(books, tmp_path):
    tree = experiment_tree(books, tmp_path / "exp")
    del tree["strategies"]["baseline"]
    path = write_toml({k: v for k, v in tree.items() if k != "strategies"}, tmp_path / "c.toml")
    with path.open("a") as f:
        f.write('[strategies.contrastive]\nstrategy = "contrastive"\naux_weight = 0.5\n')
    proc = subprocess.run(
        assay_cmd() + ["experiment", "connectives", "-c", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 2 and "need a baseline" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "exp").exists()


def test_shipped_experiment_config_is_valid():
    cfg = load_config(ConnectivesExperimentConfig, configs.resolve("connectives_kjv"), [])
    assert len(cfg.experiment.seeds) >= 2
    assert {s.strategy for s in cfg.strategies.values()} >= {
        "random",
        "uniform",
        "weighted",
        "structural",
        "contrastive",
        "chain",
    }
    gpu = load_config(ConnectivesExperimentConfig, configs.resolve("connectives_kjv_gpu"), [])
    assert gpu.model.n_layer > cfg.model.n_layer
