"""docs/train.md's key reference is the config classes rendered (assay.train.reference), and says
something about every key; a config printed as TOML reads back to itself.

ASSAY_UPDATE_DOCS=1 rewrites the reference between the markers of docs/train.md instead of failing.
"""

from __future__ import annotations

import os
import re
import tomllib

import pytest

from assay import configs
from assay.cli.tasks import TASKS
from assay.config import to_dict
from assay.train.reference import config_reference, config_summary, config_toml, type_name
from assay.train.task import load_training_config
from tests.conftest import ROOT

DOC = ROOT / "docs" / "train.md"
BEGIN, END = "<!-- keys:begin -->", "<!-- keys:end -->"
TRAINING_CONFIGS = ["shakespeare_char", "shakespeare_char_ar", "shakespeare_char_curriculum", "judge_shakespeare"]


def _models(cls, seen=None):
    """Every pydantic model reachable from config class `cls` (sections, masking stage kinds)."""
    from pydantic import BaseModel

    from assay.train.reference import _list_models, _union

    seen = set() if seen is None else seen
    if cls in seen:
        return seen
    seen.add(cls)
    for field in cls.model_fields.values():
        for part in _union(field.annotation) + _list_models(field.annotation):
            if isinstance(part, type) and issubclass(part, BaseModel):
                _models(part, seen)
    return seen


def test_the_key_reference_in_docs_train_md_is_current():
    text = DOC.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, f"{DOC} lost its {BEGIN} / {END} markers"
    head, rest = text.split(BEGIN)
    current, tail = rest.split(END)
    want = "\n" + config_reference(TASKS)
    if current == want:
        return
    if os.environ.get("ASSAY_UPDATE_DOCS"):
        DOC.write_text(head + BEGIN + want + END + tail, encoding="utf-8")
        return
    pytest.fail(
        "docs/train.md's key reference differs from the config classes: regenerate it with "
        "`ASSAY_UPDATE_DOCS=1 pytest tests/train/test_train_docs.py`",
        pytrace=False,
    )


def test_every_key_has_a_one_line_description():
    missing, long = [], []
    for cls in {task.config_class for task in TASKS.values()}:
        for model in _models(cls) - {cls}:
            for key, field in model.model_fields.items():
                if key == "kind":
                    continue
                if not field.description:
                    missing.append(f"{model.__name__}.{key}")
                elif "\n" in field.description:
                    long.append(f"{model.__name__}.{key}")
    assert not missing, f"keys without Field(description=...): {sorted(missing)}"
    assert not long, f"descriptions over one line: {sorted(long)}"


def test_the_reference_names_every_key_and_section():
    text = config_reference(TASKS)
    for cls in {task.config_class for task in TASKS.values()}:
        for section, values in to_dict(cls()).items():
            assert f"### [{section}]" in text, section
            for key in values:
                assert f"`{section}.{key}`" in text, f"{section}.{key}"
    for kind in ("bert", "random", "sticky", "span", "connectives"):
        assert f'#### [masking.stages] kind = "{kind}"' in text, kind
    assert "Only for the objectives token_classification, sequence_scoring." in text  # [features]


def test_types_are_written_with_their_bounds():
    from assay.data.config import DataConfig
    from assay.train.config import RunConfig, TrainConfig

    assert type_name(TrainConfig.model_fields["max_iters"]) == "int >= 1"
    assert type_name(TrainConfig.model_fields["beta1"]) == "float in [0, 1)"
    assert type_name(TrainConfig.model_fields["grad_clip"]) == "float > 0 or none"
    assert type_name(TrainConfig.model_fields["dtype"]) == '"float32" / "bfloat16"'
    assert type_name(DataConfig.model_fields["val_documents"]) == "list of str or none"
    assert type_name(RunConfig.model_fields["device"]) == "str"


@pytest.mark.parametrize("name", TRAINING_CONFIGS)
def test_a_config_printed_as_toml_reads_back_to_itself(name, tmp_path):
    cfg = load_training_config(configs.resolve(name), ["train.lr_decay_iters=none"], TASKS)
    text = config_toml(cfg)
    tomllib.loads(text)  # valid TOML
    path = tmp_path / "printed.toml"
    path.write_text(text, encoding="utf-8")
    assert to_dict(load_training_config(path, [], TASKS)) == to_dict(cfg)


def test_the_summary_names_objective_shape_schedule():
    cfg = load_training_config(configs.resolve("judge_shakespeare"), [], TASKS)
    lines = config_summary(cfg)
    assert lines[0].startswith("objective  sequence_scoring (sequence scorer")
    assert re.search(r"4 layers x 4 heads x 128 wide, 128 tokens per block; starts from \S+", lines[1])
    assert lines[2] == f"data       stream {cfg.data.stream}"
    assert lines[3].startswith(f"train      {cfg.train.max_iters} iterations of 32 x 1 sequences")
