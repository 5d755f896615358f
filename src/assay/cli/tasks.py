"""The tables that plug the features into the core's commands (`assay train`, `eval`, `generate`,
`data produce`). Import it only inside a command: it loads torch and every feature's tasks.

    TASKS       objective -> Task class (see assay.train.task): the core's language models, the
                judges' objectives, the connectives experiment's
    PROVIDERS   `stream.provider` -> the shard provider of `assay data produce`
"""

from __future__ import annotations

from assay.data.providers import MaskedLMProvider
from assay.experiments.connectives.task import TASKS as CONNECTIVE_TASKS
from assay.judges.synthetic import SyntheticProvider
from assay.judges.tasks import TASKS as JUDGE_TASKS
from assay.train.lm_tasks import CORE_TASKS

TASKS = CORE_TASKS | JUDGE_TASKS | CONNECTIVE_TASKS

PROVIDERS = {provider.kind: provider for provider in (MaskedLMProvider, SyntheticProvider)}
