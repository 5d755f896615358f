import pytest

from assay import configs
from assay.config import apply_override, load_config, parse_value
from assay.errors import ConfigError
from assay.masking.config import StickyStage
from assay.train.config import TrainingConfig


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-2", -2),
        ("1e-3", 1e-3),
        ("0.5", 0.5),
        ("true", True),
        ("False", False),
        ("none", None),
        ("NULL", None),
        ("[1, 2]", [1, 2]),
        ("[0.1, 0.9]", [0.1, 0.9]),
        ('["a", "b"]', ["a", "b"]),
        ("[a, b]", ["a", "b"]),
        ("[1, none]", [1, None]),
        ("[]", []),
        ("runs/x", "runs/x"),
        ('"quoted"', "quoted"),
        ('{kind = "span", rate = 0.2}', {"kind": "span", "rate": 0.2}),
    ],
)
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_override_nested_and_list_index():
    tree = {"masking": {"stages": [{"kind": "random"}, {"kind": "sticky", "rate": 0.4}]}}
    apply_override(tree, "masking.stages.1.rate=0.6")
    apply_override(tree, "train.max_iters=7")
    assert tree["masking"]["stages"][1]["rate"] == 0.6
    assert tree["train"]["max_iters"] == 7
    with pytest.raises(ConfigError, match="index 5 out of range"):
        apply_override(tree, "masking.stages.5.rate=0.1")
    with pytest.raises(ConfigError, match="key=value"):
        apply_override(tree, "train.max_iters")


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nmax_iters = 10\neval_blocks = "none"\n[model]\nn_layer = 3\n[run]\nout_dir = "x"\n')
    cfg = load_config(
        TrainingConfig,
        path,
        ["train.max_iters=20", "train.grad_clip=none", "model.dropout=0.1", "masking.stages=[{kind='bert'}]"],
    )
    assert cfg.train.max_iters == 20
    assert cfg.train.grad_clip is None and cfg.train.eval_blocks is None  # "none" in TOML
    assert cfg.model.n_layer == 3 and cfg.model.dropout == 0.1
    assert cfg.masking.stages[0].kind == "bert" and cfg.masking.stages[0].rate == 0.15


def test_overrides_reach_union_members():
    cfg = load_config(TrainingConfig, None, ['masking.stages=[{kind="sticky", rate=[0.2, 0.5], p1=0.2, p2=0.7}]'])
    stage = cfg.masking.stages[0]
    assert isinstance(stage, StickyStage) and stage.rate == (0.2, 0.5) and stage.p2 == 0.7


def test_all_errors_reported_at_once_on_one_line():
    with pytest.raises(ConfigError) as err:
        load_config(TrainingConfig, None, ["model.n_layr=3", "train.lr=-1", "train.max_iters=abc"])
    message = str(err.value)
    assert "\n" not in message
    assert "model.n_layr: unknown key (did you mean 'n_layer'?)" in message
    assert "train.lr" in message and "train.max_iters" in message


def test_unknown_key_inside_a_stage_names_the_stage_field():
    with pytest.raises(ConfigError, match=r"masking\.stages\.0\.p1x: unknown key \(did you mean 'p1'\?\)"):
        load_config(TrainingConfig, None, ['masking.stages=[{kind="sticky", p1x=0.2}]'])


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("model.n_embd=130", "divisible by n_head"),
        ("model.n_embd=100", "must be even for RoPE"),
        ("model.dropout=0.2", None),
        ("model.mode=token_classifier", "trains from a synthetic stream"),
        ("train.unfreeze_at_iter=5", "needs model.freeze_transformer"),
        ('masking.stages=[{kind="random", rate=[0.9, 0.1]}]', "rate must be in"),
        ('masking.stages=[{kind="zigzag"}]', "kind"),
        ("train.min_lr=1", "min_lr"),
        ("unknown.key=1", "unknown key"),
    ],
)
def test_bad_values(override, match):
    if match is None:  # a valid override, for contrast
        load_config(TrainingConfig, None, [override])
        return
    with pytest.raises(ConfigError, match=match):
        load_config(TrainingConfig, None, [override])


def test_causal_classifier_is_rejected():
    with pytest.raises(ConfigError, match="needs bidirectional attention"):
        load_config(TrainingConfig, None, ["model.mode=sequence_scorer", "model.attention=causal", "data.stream=x"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(TrainingConfig, tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nmax_iters = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(TrainingConfig, bad)


@pytest.mark.parametrize("name", configs.names())
def test_every_shipped_config_loads(name):
    path = configs.resolve(name)
    if path.name.startswith("connectives_"):  # experiment configs: several runs in one file
        from assay.experiments.connectives.experiment import ConnectivesExperimentConfig

        cfg = load_config(ConnectivesExperimentConfig, path)
        assert cfg.experiment.out_dir.startswith("runs/")
        return
    if path.name.startswith("synth_"):  # the synthetic-data pipeline (all its steps)
        from assay.synth.config import SynthConfig

        cfg = load_config(SynthConfig, path)
        assert cfg.llm.model and cfg.score.scorers
        return
    from assay.cli.tasks import TASKS
    from assay.train.task import load_training_config

    cfg = load_training_config(path, [], TASKS)  # validated by its objective's config class
    assert cfg.run.out_dir.startswith("runs/")
