"""Judges trained from a synthetic stream: transfer learning, freezing, metrics, resume."""

import json

import torch
from safetensors.torch import load_file

from assay.config import validate
from assay.judges.tasks import TASKS
from assay.train import trainer
from assay.train.checkpoint import load_checkpoint
from assay.train.config import TrainingConfig
from assay.train.metrics import read_metrics
from assay.train.trainer import config_for_resume
from tests.conftest import stream_tree


def train(cfg, resume=None):
    return trainer.train(cfg, resume, tasks=TASKS)


def judge_config(tmp_path, name, stream, lm, **sections):
    return validate(TrainingConfig, stream_tree(tmp_path / name, stream, lm, **sections))


def weights(run, which="last"):
    return load_file(str(run / which / "model.safetensors"))


def test_sequence_scorer_from_the_lm(tmp_path, tiny_lm, tiny_stream):
    cfg = judge_config(tmp_path, "scorer", tiny_stream, tiny_lm, train={"max_iters": 16, "eval_interval": 8})
    result = train(cfg)
    final = json.loads((tmp_path / "scorer/eval.json").read_text())
    for key in ("val_pearson", "val_spearman", "val_mae", "val_r2", "baseline_pearson", "baseline_direction"):
        assert key in final and final[key] == result.final[key]
    assert (tmp_path / "scorer/calibration.png").exists()
    lm, judge = weights(tiny_lm, "best"), weights(tmp_path / "scorer", "best")
    assert judge["head.weight"].shape == (1, 64)
    assert set(lm) - {"head.weight"} <= set(judge)


def test_init_from_loads_the_trunk_and_reports_new_heads(tmp_path, tiny_lm, tiny_stream, capsys):
    cfg = judge_config(
        tmp_path,
        "insp",
        tiny_stream,
        tiny_lm,
        model={"mode": "token_classifier"},
        train={"max_iters": 1, "lr": 1e-9, "min_lr": 1e-10, "warmup_iters": 0},
    )
    train(cfg)
    err = capsys.readouterr().err
    assert "new (freshly initialised): class_weights, head.bias, head.weight" in err
    lm, judge = weights(tiny_lm, "best"), weights(tmp_path / "insp")
    for name in ("embed.weight", "blocks.0.attn.q.weight", "ln_f.weight"):
        assert torch.allclose(lm[name], judge[name], atol=1e-6)  # lr ~0: still the LM's weights
    # a classifier with another number of classes: its head is skipped, the trunk is loaded
    other = judge_config(
        tmp_path,
        "three",
        tiny_stream,
        tmp_path / "insp",
        model={"mode": "token_classifier", "num_classes": 3},
        train={"max_iters": 1},
    )
    train(other)
    assert "skipped (shape differs): class_weights, head.bias, head.weight" in capsys.readouterr().err


def test_frozen_transformer_only_moves_the_head_until_unfrozen(tmp_path, tiny_lm, tiny_stream):
    frozen = judge_config(
        tmp_path,
        "frozen",
        tiny_stream,
        tiny_lm,
        model={"freeze_transformer": True, "dropout": 0.1},
        train={"max_iters": 8, "eval_interval": 8},
    )
    train(frozen)
    lm, after = weights(tiny_lm, "best"), weights(tmp_path / "frozen")
    trunk = [n for n in after if not n.startswith("head.")]
    assert all(torch.equal(lm[n], after[n]) for n in trunk)
    opt = json.loads((tmp_path / "frozen/last/optimizer.json").read_text())
    assert sum(len(g["params"]) for g in opt["param_groups"]) == 2  # head.weight, head.bias only

    staged = judge_config(
        tmp_path,
        "staged",
        tiny_stream,
        tiny_lm,
        model={"freeze_transformer": True},
        train={"max_iters": 4, "eval_interval": 4, "unfreeze_at_iter": 4},
    )
    train(staged)
    at4 = weights(tmp_path / "staged")
    assert all(torch.equal(lm[n], at4[n]) for n in trunk)  # frozen for iterations 1-4
    ckpt = load_checkpoint(tmp_path / "staged", "last", tasks=TASKS)
    train(config_for_resume(ckpt, tmp_path / "staged", ["train.max_iters=8"]), resume=ckpt)
    at8 = weights(tmp_path / "staged")
    rows = read_metrics(tmp_path / "staged/metrics.jsonl")
    assert {"iter": 4, "event": "unfreeze"} in rows
    assert not all(torch.equal(lm[n], at8[n]) for n in trunk)  # fine-tuned after iter 4
    opt = json.loads((tmp_path / "staged/last/optimizer.json").read_text())
    assert len(opt["param_groups"]) == 4  # head groups, then the trunk's added at unfreeze


def test_token_classifier_metrics_weights_and_exact_resume(tmp_path, tiny_lm, tiny_stream):
    sections = {
        "model": {"mode": "token_classifier", "dropout": 0.1},
        "train": {"max_iters": 12, "eval_interval": 4, "lr_decay_iters": 12, "class_weighting": "balanced"},
    }
    full = train(judge_config(tmp_path, "full", tiny_stream, tiny_lm, **sections))
    for key in ("val_accuracy", "val_auroc", "val_f1", "val_precision/1", "val_recall/0", "baseline_auroc"):
        assert key in full.final
    w = load_file(str(tmp_path / "full/last/model.safetensors"))["class_weights"]
    assert w[1] > w[0]  # replaced tokens are the minority class
    part_cfg = judge_config(tmp_path, "part", tiny_stream, tiny_lm, **sections)
    part_cfg.train.max_iters = 6  # stops mid-shard: 6 * 8 samples = 3 shards of 16
    train(part_cfg)
    ckpt = load_checkpoint(tmp_path / "part", "last", tasks=TASKS)
    assert ckpt.state["task"]["stream"] == {"seq": 3, "offset": 0}
    train(config_for_resume(ckpt, tmp_path / "part", ["train.max_iters=12"]), resume=ckpt)
    losses = lambda d: [r["train_loss"] for r in read_metrics(d / "metrics.jsonl") if "train_loss" in r]  # noqa: E731
    assert losses(tmp_path / "full") == losses(tmp_path / "part")
