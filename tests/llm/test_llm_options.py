"""The shared LLM command-line options: parsed by a real typer command into LLMSettings."""

from __future__ import annotations

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
    llm_settings_from_options,
)
from assay.errors import ConfigError
from assay.llm import LLMSettings

seen: dict = {}
app = typer.Typer()


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
) -> None:
    base = LLMSettings(max_concurrency=3, timeout_s=30)  # e.g. the [llm] section of a config file
    seen["settings"] = llm_settings_from_options(
        model=model,
        api_base=api_base,
        api_key_env=api_key_env,
        env_file=env_file,
        max_concurrency=max_concurrency,
        max_qps=max_qps,
        cache=cache,
        base=base,
    )
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
    assert llm_settings_from_options() == LLMSettings()


def test_bad_values_are_refused():
    assert CliRunner().invoke(app, ["--max-concurrency", "0"]).exit_code == 2
    with pytest.raises(ConfigError, match="max_qps"):
        llm_settings_from_options(max_qps=-1.0)


def test_help_lists_every_option():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    for flag in ("--model", "--api-base", "--api-key-env", "--env-file", "--max-concurrency", "--max-qps",
                 "--cache", "--limit", "--resume", "--no-resume", "--seed"):  # fmt: skip
        assert flag in result.output
