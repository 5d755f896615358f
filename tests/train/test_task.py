"""The task tables: an objective name -> its Task, chosen from a config's model and masking stages."""

import pytest

from assay.cli.tasks import TASKS
from assay.errors import CheckpointError, ConfigError
from assay.experiments.connectives.config import ConnectiveTrainingConfig
from assay.experiments.connectives.task import ConnectiveTask
from assay.judges.tasks import SequenceScoringTask, TokenClassificationTask
from assay.train.checkpoint import ObjectiveError, load_checkpoint
from assay.train.config import TrainingConfig
from assay.train.lm_tasks import CORE_TASKS, AutoregressiveTask, MaskedDiffusionTask
from assay.train.task import load_training_config, objective_of, task_for
from tests.conftest import write_toml


@pytest.mark.parametrize(
    ("tree", "objective"),
    [
        ({}, "diffusion"),
        ({"model": {"attention": "causal"}}, "autoregressive"),
        ({"model": {"mode": "token_classifier"}}, "token_classification"),
        ({"model": {"mode": "sequence_scorer"}}, "sequence_scoring"),
        ({"masking": {"stages": [{"kind": "span"}]}}, "diffusion"),
        ({"masking": {"stages": [{"kind": "connectives", "strategy": "chain"}]}}, "connectives"),
    ],
)
def test_objective_of_a_raw_config(tree, objective):
    assert objective_of(tree, TASKS) == objective


def test_every_task_is_filed_under_its_own_objective():
    assert {
        "diffusion": MaskedDiffusionTask,
        "autoregressive": AutoregressiveTask,
        "token_classification": TokenClassificationTask,
        "sequence_scoring": SequenceScoringTask,
        "connectives": ConnectiveTask,
    } == TASKS
    assert all(name == task.objective for name, task in TASKS.items())
    # the core's own table knows only its language models: a stage kind it does not know is no objective
    assert objective_of({"masking": {"stages": [{"kind": "connectives"}]}}, CORE_TASKS) == "diffusion"
    with pytest.raises(ConfigError, match="no task trains objective 'connectives' here"):
        task_for("connectives", CORE_TASKS)


def test_a_config_is_validated_by_its_objectives_config_class(tmp_path):
    path = write_toml(
        {"masking": {"stages": [{"kind": "connectives", "strategy": "uniform", "p": 0.3}]}}, tmp_path / "c.toml"
    )
    cfg = load_training_config(path, [], TASKS)
    assert isinstance(cfg, ConnectiveTrainingConfig) and cfg.objective == "connectives"
    assert cfg.masking.stages[0].p == 0.3
    plain = load_training_config(None, ["model.attention=causal"], TASKS)
    assert type(plain) is TrainingConfig and plain.objective == "autoregressive"
    with pytest.raises(ConfigError, match=r"masking\.stages\.0\.px: unknown key"):
        load_training_config(path, ["masking.stages.0.px=1"], TASKS)
    with pytest.raises(ConfigError, match="masking.stages.0"):  # the core alone does not know the stage
        load_training_config(path, [], CORE_TASKS)


def test_a_checkpoint_of_an_objective_the_caller_does_not_know_is_one_clear_error(judges):
    with pytest.raises(ObjectiveError, match="is a sequence_scoring run; this reads only diffusion, autoregressive"):
        load_checkpoint(judges / "scorer")
    assert issubclass(ObjectiveError, CheckpointError)
    assert load_checkpoint(judges / "scorer", tasks=TASKS).task is SequenceScoringTask


def test_a_checkpoint_of_an_earlier_version_loads(tiny_lm, tmp_path):
    """Configs of format 1 written before the task tables held `model.aux_classes = 0`."""
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(load_checkpoint(tiny_lm).directory, old)
    config = json.loads((old / "config.json").read_text())
    config["model"]["aux_classes"] = 0
    (old / "config.json").write_text(json.dumps(config))
    ckpt = load_checkpoint(old)
    assert ckpt.task is MaskedDiffusionTask and ckpt.build_model() is not None
    config["model"]["aux_classes"] = 3  # a class head the core no longer builds: refused, not ignored
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model.aux_classes: unknown key"):
        load_checkpoint(old)
    (old / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_checkpoint(old)
