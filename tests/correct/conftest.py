"""Fixtures of the self-correction tests: the scripted server answering as correct_server scripts it,
and the GSM8K sample as a JSONL file."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.llm.testserver import ScriptedServer
from tests.correct.correct_server import respond, sample_lines


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(responder=respond) as srv:
        yield srv


@pytest.fixture()
def data(tmp_path) -> Path:
    path = tmp_path / "test.jsonl"  # named like the sample so the ids are gsm8k-test-<i>
    path.write_text("".join(sample_lines()), encoding="utf-8")
    return path
