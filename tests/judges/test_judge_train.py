"""`assay judge train` (assay.judges.recipe, assay.cli.judge): a corpus to two judges in one call,
the judges' shape taken from the LM, resume, refusals and one-line errors. Tiny budgets: a 2 x 64 LM
on 60k characters of tiny-shakespeare, shards of 16 passages of 31 characters, judges of 4 steps."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from assay.cli.judge import judge_app
from assay.data.corpus import is_play, load_corpus
from assay.data.stream import list_shards
from assay.errors import AssayError, ConfigError
from assay.judges import Judge
from assay.judges.recipe import SHAPE, build_recipe, settings_tree, summary_rows, train_judge

TINY = [
    "lm.run.threads=1",
    "lm.data.block_size=64",
    "lm.model.n_layer=2",
    "lm.model.n_head=2",
    "lm.model.n_embd=64",
    "lm.train.batch_size=8",
    "lm.train.eval_interval=20",
    "lm.train.eval_blocks=8",
    "lm.train.elbo_points=2",
    "lm.train.warmup_iters=2",
    "lm.train.plot=false",
    "rewrite.shards=2",
    "rewrite.shard_size=16",
    "rewrite.val_shards=1",
    "rewrite.block_size=32",
] + [
    f"{judge}.{key}"
    for judge in ("scorer", "inspector")
    for key in (
        "run.threads=1",
        "train.batch_size=8",
        "train.eval_interval=4",
        "train.warmup_iters=1",
        "train.plot=false",
    )
]
BUDGET = {"lm.train.max_iters": 20, "scorer.train.max_iters": 4, "inspector.train.max_iters": 4}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(load_corpus("tinyshakespeare").documents[0].text[:60_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory, corpus):
    """One finished recipe: the LM, the lm rewriter's stream, both judges."""
    out = tmp_path_factory.mktemp("recipe") / "judge"
    settings = {"corpus": str(corpus), "rewrite.workers": 1, **BUDGET}
    result = train_judge(out, settings=settings, sets=TINY, show=False)
    return out, result


def _json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_recipe_makes_both_judges_from_the_lm_with_its_shape(made):
    out, result = made
    assert [(s.name, s.status) for s in result.stages] == [
        ("lm", "trained"),
        ("stream", "made"),
        ("scorer", "trained"),
        ("inspector", "trained"),
    ]
    assert not result.interrupted
    lm = _json(out / "lm" / "config.json")["model"]
    for name, mode in (("scorer", "sequence_scorer"), ("inspector", "token_classifier")):
        final = _json(out / name / "eval.json")
        assert final["iter"] == 4
        model = _json(out / name / "config.json")["model"]
        assert model["mode"] == mode and model["init_from"] == str(out / "lm")
        # derived from the LM's checkpoint, not the defaults' 4 x 128
        assert {k: model[k] for k in SHAPE} == {k: lm[k] for k in SHAPE} and model["n_embd"] == 64
    assert "baseline_pearson" in _json(out / "scorer" / "eval.json")
    assert "baseline_auroc" in _json(out / "inspector" / "eval.json")
    assert _json(out / "scorer" / "config.json")["features"]["lm_features"] is True  # the default scorer
    stream = _json(out / "stream" / "meta.json")
    assert stream["train_shards"] == 2 and stream["seq_len"] == 32 and len(list_shards(out / "stream" / "train")) == 2
    rows = {row["objective"]: row for row in summary_rows(result)}
    assert set(rows) == {"diffusion", "sequence_scoring", "token_classification"}
    auroc = rows["token_classification"]["metrics"][0]
    assert auroc["metric"] == "AUROC" and auroc["baseline"] is not None
    [scored] = Judge.load(out).score(["O Romeo, Romeo! wherefore art thou Romeo?"])
    assert 0.0 <= scored["score"] <= 1.0 and len(scored["tokens"]) == 41


def test_a_non_empty_out_is_refused_without_resume_or_overwrite(made, corpus):
    out, _ = made
    r = CliRunner().invoke(judge_app, ["train", "--corpus", str(corpus), "--out", str(out)])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError)
    message = str(r.exception)
    assert "--resume" in message and "--overwrite" in message and "\n" not in message
    r = CliRunner().invoke(judge_app, ["train", "--out", str(out), "--resume", "--overwrite"])
    assert isinstance(r.exception, ConfigError) and "exclusive" in str(r.exception)


def test_resume_skips_finished_stages_and_continues_an_interrupted_one(made, tmp_path):
    out = tmp_path / "judge"
    shutil.copytree(made[0], out)
    finished = {name: (out / name / "eval.json").stat().st_mtime_ns for name in ("lm", "scorer")}
    shards = sorted(p.name for p in (out / "stream" / "train").iterdir())
    (out / "inspector" / "eval.json").unlink()  # as if stopped after its last checkpoint at iter 4
    r = CliRunner().invoke(judge_app, ["train", "--out", str(out), "--resume", "--judge-iters", "6"])
    assert r.exit_code == 0, r.output
    for step in ("1/4 language model", "2/4 rewrites", "3/4 sequence scorer", "4/4 token inspector"):
        assert step in r.output
    assert "is finished: reusing it" in r.output and "continuing" in r.output
    assert f'assay score {out} "some text"' in r.output
    assert {name: (out / name / "eval.json").stat().st_mtime_ns for name in ("lm", "scorer")} == finished
    assert sorted(p.name for p in (out / "stream" / "train").iterdir()) == shards
    assert _json(out / "inspector" / "eval.json")["iter"] == 6  # continued from 4, not retrained
    iters = [row["iter"] for row in map(json.loads, (out / "inspector" / "metrics.jsonl").open()) if "val_loss" in row]
    assert iters == [4, 6]
    # the scorer finished at 4: kept, with a note on how to train it further
    assert _json(out / "scorer" / "eval.json")["iter"] == 4 and "stopped at iter 4" in r.output


def test_overwrite_with_a_given_lm_and_labelled_texts(made, tmp_path):
    """--lm reuses an LM run; --overwrite starts afresh; the jsonl rewriter trains the same judges."""
    out, _ = made
    rows = [
        {"text": "First Citizen:\nBefore we proceed any further, hear me speak.", "spans": [[15, 40]]},
        {"text": "All:\nSpeak, speak. You are all resolved rather to die than to famish?", "score": 0.0},
        {"text": "First Citizen:\nYou know Caius Marcius is chief enemy to the people.", "spans": [[20, 60]]},
        {"text": "We know't, we know't. Let us kill him, and we'll have corn at our own price.", "score": 1.0},
    ] * 3
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    target = tmp_path / "j"
    (target / "scorer").mkdir(parents=True)
    (target / "scorer" / "stale.txt").write_text("from an earlier run")
    settings = {"lm_run": str(out / "lm"), "rewrite.kind": "jsonl", "rewrite.path": str(labelled), **BUDGET}
    sets = [s for s in TINY if not s.startswith("lm.")] + ["rewrite.val_fraction=0.3"]
    result = train_judge(target, settings=settings, sets=sets, overwrite=True, show=False)
    assert [(s.name, s.status) for s in result.stages][0] == ("lm", "given")
    assert not (target / "lm").exists() and not (target / "scorer" / "stale.txt").exists()
    assert (target / "scorer" / "eval.json").exists() and (target / "inspector" / "eval.json").exists()
    assert _json(target / "stream" / "meta.json")["mode"] == "rewrite_jsonl"
    assert _json(target / "scorer" / "config.json")["model"]["init_from"] == str(out / "lm")


@pytest.mark.parametrize(
    ("settings", "sets", "message"),
    [
        ({"corpus": "no/such/corpus.txt"}, [], "neither a shipped corpus"),
        ({}, [], "--corpus SPEC"),
        ({"corpus": "SMALL"}, ["scorer.model.n_layer=3"], "scorer.model.n_layer is set by `assay judge train`"),
        ({"corpus": "SMALL"}, ["lm.run.out_dir=x"], "lm.run.out_dir is set by"),
        ({"corpus": "SMALL"}, ["rewrite.kind=jsonl"], "--jsonl FILE"),
        ({"corpus": "SMALL"}, ["lm.data.block_size=40000"], "is too small for the LM's blocks of 40000"),
        ({"corpus": "SMALL", "lm_run": "SCORER"}, [], "is a sequence_scoring run, not a masked-diffusion LM"),
        ({"corpus": "SMALL", "lm_run": "CORPUS"}, [], "holds no checkpoint"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(made, corpus, tmp_path, settings, sets, message):
    names = {"SMALL": str(corpus), "SCORER": str(made[0] / "scorer"), "CORPUS": str(corpus)}
    settings = {key: names.get(value, value) for key, value in settings.items()}
    out = tmp_path / "out"
    with pytest.raises(AssayError) as exc:
        train_judge(out, settings=settings, sets=sets, show=False)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not out.exists()


def test_shakespeare_plays_is_a_shipped_corpus(tmp_path):
    plays = load_corpus("shakespeare_plays")
    works = load_corpus("shakespeare")
    assert len(plays.documents) == 37 and all(is_play(d.text) for d in plays.documents)
    assert {d.id for d in works.documents} - {d.id for d in plays.documents} >= {"Sonnets", "The Rape of Lucrece"}
    recipe = build_recipe(tmp_path, settings_tree(tmp_path, None, {"corpus": "shakespeare_plays"}, [], False))
    assert recipe.lm.data.corpus == "shakespeare_plays" and recipe.rewrite.kind == "lm"
