"""`assay eval RUN --stream DIR` and `--corpus SPEC`: judges and language models on data they did not
train on (the `heldout` corpus), through real `assay` processes; and `assay report`'s baselines."""

import json
import math
import os
import shutil
import subprocess

import pytest

from assay.config import validate
from assay.data.produce import produce_stream
from assay.data.providers import MaskedLMProvider
from assay.judges.synthetic import SyntheticProvider
from assay.judges.tasks import TASKS as JUDGE_TASKS
from assay.train.config import TrainingConfig
from assay.train.trainer import train
from tests.conftest import ROOT, assay_cmd, stream_tree, tiny_tree


def assay(*args, check=True, **env):
    # the environment is read now, after conftest pointed ASSAY_CACHE_DIR at the session's cache
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run([*assay_cmd(), *map(str, args)], env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def assay_json(*args, **env) -> dict:
    return json.loads(assay(*args, "--json", **env).stdout)


def one_line_error(proc, *fragments):
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def own_eval(run) -> dict:
    return json.loads((run / "eval.json").read_text())


def finite(value, lo, hi) -> bool:
    return isinstance(value, float) and math.isfinite(value) and lo <= value <= hi


@pytest.fixture(scope="module")
def heldout_stream(tmp_path_factory, tiny_lm):
    """The judges' stream settings on the `heldout` corpus: 2 validation shards and 1 training shard of 16."""
    folder = tmp_path_factory.mktemp("heldout") / "stream"
    cfg = validate(TrainingConfig, stream_tree(folder.parent / "unused", folder, tiny_lm, data={"corpus": "heldout"}))
    produce_stream(cfg, folder, workers=1, shards=1, show=False, provider_class=SyntheticProvider)
    return folder


def test_scorer_on_another_stream(judges, heldout_stream):
    run = judges / "scorer"
    own = assay_json("eval", run)  # the same checkpoint (best) on its own validation set
    calibration = (run / "calibration.png").read_bytes()  # that evaluation's plot
    out = assay_json("eval", run, "--stream", heldout_stream)
    assert out["stream"] == str(heldout_stream) and out["val_samples"] == 32
    for key in ("val_pearson", "val_spearman", "baseline_pearson", "baseline_spearman"):
        assert finite(out[key], -1.0, 1.0), key
        assert out[key] != own[key], key  # other texts, other figures
    assert out["pearson"] == out["val_pearson"] and out["spearman"] == out["val_spearman"]
    assert finite(out["val_mae"], 0.0, 1.0)
    # the direction was learned on the run's own training stream (the same shard as in training)
    assert out["baseline_direction_from"] == "run_stream"
    assert out["baseline_direction"] == own["baseline_direction"]
    # the run's calibration plot is untouched; this one is named after the stream
    assert (run / "calibration.png").read_bytes() == calibration
    assert (run / f"eval-on-{heldout_stream.parent.name}-stream" / "calibration.png").exists()
    # on its own data nothing says otherwise, and the aliases are there too
    assert "stream" not in own and "baseline_direction_from" not in own and own["pearson"] == own["val_pearson"]


def test_inspector_on_another_stream_and_on_the_corpus_it_came_from(judges, heldout_stream, tmp_path):
    run = judges / "inspector"
    own = assay_json("eval", run)
    on_stream = assay_json("eval", run, "--stream", heldout_stream)
    for key in ("val_auroc", "baseline_auroc", "auroc"):
        assert finite(on_stream[key], 0.0, 1.0), key
    assert on_stream["auroc"] == on_stream["val_auroc"]
    assert on_stream["val_auroc"] != own["val_auroc"] and on_stream["baseline_auroc"] != own["baseline_auroc"]
    assert on_stream["baseline_direction_from"] == "run_stream"
    # --corpus makes the same stream (same settings, same corpus) in a temporary folder: same figures
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    on_corpus = assay_json("eval", run, "--corpus", "heldout", TMPDIR=str(tmp))
    assert on_corpus["corpus"] == "heldout" and "stream" not in on_corpus
    for key in ("val_samples", "val_loss", "val_auroc", "baseline_auroc", "auroc", "baseline_direction_from"):
        assert on_corpus[key] == on_stream[key], key
    assert list(tmp.iterdir()) == []  # the temporary stream is gone


def test_direction_from_the_evaluated_stream_once_the_run_stream_is_gone(
    tmp_path, tiny_lm, tiny_stream, heldout_stream
):
    own_stream = tmp_path / "stream"
    shutil.copytree(tiny_stream, own_stream)
    tree = stream_tree(tmp_path / "scorer", own_stream, tiny_lm, train={"max_iters": 2, "eval_interval": 2})
    train(validate(TrainingConfig, tree), tasks=JUDGE_TASKS)
    shutil.rmtree(own_stream)
    out = assay_json("eval", tmp_path / "scorer", "--stream", heldout_stream)
    assert out["baseline_direction_from"] == "eval_stream"
    assert finite(out["baseline_pearson"], -1.0, 1.0) and finite(out["pearson"], -1.0, 1.0)
    # on a corpus, the temporary stream's training shard orients it, and the run's config says how to make it
    on_corpus = assay_json("eval", tmp_path / "scorer", "--corpus", "heldout")
    assert on_corpus["baseline_direction_from"] == "eval_stream" and on_corpus["val_samples"] == 32


def test_language_model_on_another_corpus(tiny_lm):
    args = ("--blocks", 8, "--elbo-points", 2)
    own = assay_json("eval", tiny_lm, *args)
    other = assay_json("eval", tiny_lm, "--corpus", "heldout", *args)
    assert other["corpus"] == "heldout" and other["val_samples"] == 8
    for out in (own, other):
        assert finite(out["bits_per_char"], 0.5, 20.0) and out["bits_per_char"] == out["val_elbo_bits_per_char"]
    assert other["bits_per_char"] != own["bits_per_char"] and other["val_loss"] != own["val_loss"]
    assert 0.0 < other["val_unk_fraction"] < 0.05  # [stage directions] and the KJV's ’ are not in its vocabulary
    assert not (tiny_lm / "eval-on-corpus-heldout").exists()  # an LM writes no files


def masked_lm_stream(root, corpus: str):
    """A masked-LM stream of `corpus` (1 validation and 1 training shard of 16), char tokenizer of the corpus."""
    tree = tiny_tree(root / "unused", data={"corpus": corpus, "stream": str(root / "stream")})
    tree["stream"] = {"shard_size": 16, "val_shards": 1, "max_backlog": None}
    produce_stream(
        validate(TrainingConfig, tree), root / "stream", shards=1, show=False, provider_class=MaskedLMProvider
    )
    return root / "stream"


@pytest.fixture(scope="module")
def foreign_stream(tmp_path_factory):
    """A masked-LM stream whose char tokenizer was built from another text."""
    root = tmp_path_factory.mktemp("foreign")
    text = root / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    return masked_lm_stream(root, str(text))


def test_language_model_on_a_masked_lm_stream(tiny_lm, judges, tmp_path):
    folder = masked_lm_stream(tmp_path, "tinyshakespeare")  # the LM's own vocabulary
    out = assay_json("eval", tiny_lm, "--stream", folder)
    assert out["objective"] == "diffusion" and out["stream"] == str(folder) and out["val_samples"] == 16
    assert finite(out["val_loss"], 0.1, 10.0) and out["val_bits_per_token"] == pytest.approx(
        out["val_loss"] / math.log(2)
    )
    # a judge needs a synthetic stream
    one_line_error(assay("eval", judges / "inspector", "--stream", folder, check=False), "needs a synthetic stream")


def test_one_line_errors(judges, heldout_stream, foreign_stream, tmp_path):
    run = judges / "scorer"
    one_line_error(
        assay("eval", run, "--stream", heldout_stream, "--corpus", "heldout", check=False), "--stream and --corpus"
    )
    one_line_error(assay("eval", run, "--stream", foreign_stream, check=False), "another tokenizer", "69 tokens")
    one_line_error(assay("eval", run, "--stream", tmp_path / "nowhere", check=False), "does not exist")
    one_line_error(assay("eval", run, "--stream", tmp_path, check=False), "not a stream folder")
    one_line_error(assay("eval", run, "--corpus", tmp_path / "none.txt", check=False), "neither a shipped corpus")


def test_report_shows_every_baseline(judges):
    scorer, inspector = judges / "scorer", judges / "inspector"
    rows = json.loads(assay("report", scorer, inspector, "--json").stdout)
    expected = {
        (str(scorer), "pearson"): own_eval(scorer)["baseline_pearson"],
        (str(scorer), "spearman"): own_eval(scorer)["baseline_spearman"],
        (str(inspector), "AUROC"): own_eval(inspector)["baseline_auroc"],
    }
    got = {(row["run"], m["metric"]): m["baseline"] for row in rows for m in row["metrics"]}
    for key, baseline in expected.items():
        assert got[key] == baseline, key
    assert {key for key, value in got.items() if value is not None} == set(expected)
    table = assay("report", scorer, inspector).stdout
    for baseline in expected.values():
        assert f"{baseline:.4f}" in table
