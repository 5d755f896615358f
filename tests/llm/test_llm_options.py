"""The shared LLM command-line options: parsed by a real typer command into a config tree with [llm] and
[runner] sections (flags over the config file, --set over flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from assay.cli.llm_options import (
    ApiBaseOpt,
    ApiKeyEnvOpt,
    CacheOpt,
    EnvFileOpt,
    LimitOpt,
    MaxConcurrencyOpt,
    MaxQpsOpt,
    ModelOpt,
    ResumeOpt,
    SeedOpt,
    llm_flags,
    load_with_flags,
)
from assay.config import Section
from assay.errors import ConfigError
from assay.llm import LLMSettings
from assay.pipelines.runner import RunnerSettings

seen: dict = {}
app = typer.Typer()
CONFIG_FILE: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def config_file(tmp_path):
    path = tmp_path / "config.toml"  # e.g. the [llm] section of a user's config file
    path.write_text("[llm]\nmax_concurrency = 3\ntimeout_s = 30\n", encoding="utf-8")
    CONFIG_FILE["path"] = path


class Tree(Section):
    llm: LLMSettings = LLMSettings()
    runner: RunnerSettings = RunnerSettings()


@app.command()
def job(
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    env_file: EnvFileOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    max_qps: MaxQpsOpt = None,
    cache: CacheOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    seed: SeedOpt = None,
    sets: Annotated[list[str] | None, typer.Option("--set")] = None,
) -> None:
    flags = llm_flags(model, api_base, api_key_env, env_file, max_concurrency, max_qps, cache, limit, resume, False)
    tree = load_with_flags(Tree, CONFIG_FILE["path"], sets, flags)
    seen["settings"], seen["runner"] = tree.llm, tree.runner
    seen["run"] = (limit, resume, seed)


def test_all_options_reach_the_settings(tmp_path):
    args = [
        "--model", "anthropic/claude-x", "--api-base", "http://127.0.0.1:9/v1", "--api-key-env", "MY_KEY",
        "--env-file", str(tmp_path / ".env"), "--max-concurrency", "16", "--max-qps", "2.5",
        "--cache", str(tmp_path / "c.sqlite"), "--limit", "5", "--resume", "--seed", "7",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (s.model, s.api_base, s.api_key_env, s.env_file) == (
        "anthropic/claude-x",
        "http://127.0.0.1:9/v1",
        "MY_KEY",
        tmp_path / ".env",
    )
    assert (s.max_concurrency, s.max_qps, s.cache, s.timeout_s) == (16, 2.5, tmp_path / "c.sqlite", 30)
    assert seen["run"] == (5, True, 7)


def test_options_left_out_keep_the_base_and_defaults():
    result = CliRunner().invoke(app, ["--no-resume"])
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (s.model, s.max_concurrency, s.max_qps, s.cache) == ("local/smollm2", 3, None, None)
    assert seen["run"] == (None, False, None)
    assert load_with_flags(Tree, None, None, {}).llm == LLMSettings()


def test_set_wins_over_flags_and_reaches_the_runner():
    result = CliRunner().invoke(app, ["--max-concurrency", "16", "--set", "llm.max_concurrency=5", "--limit", "4"])
    assert result.exit_code == 0, result.output
    assert seen["settings"].max_concurrency == 5 and seen["runner"].concurrency == 16
    assert seen["runner"].limit == 4


def test_bad_values_are_refused():
    assert CliRunner().invoke(app, ["--max-concurrency", "0"]).exit_code == 2
    with pytest.raises(ConfigError, match="max_qps"):
        load_with_flags(Tree, None, ["llm.max_qps=-1.0"], {})


def test_help_lists_every_option():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    for flag in ("--model", "--api-base", "--api-key-env", "--env-file", "--max-concurrency", "--max-qps",
                 "--cache", "--limit", "--resume", "--no-resume", "--seed"):  # fmt: skip
        assert flag in result.output
