"""The shared LLM command-line options (declared once, added by `@llm_options`): parsed by a real typer
command into a config tree with [llm] and [runner] sections (flags over the config file, --set over
flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from assay.cli.options import EndpointFlags, LLMFlags, SeedOpt, endpoint_options, llm_options, load_with_flags
from assay.config import Section
from assay.errors import ConfigError
from assay.llm import LLMSettings
from assay.pipeline.runner import RunnerSettings

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


@app.command("job")
@llm_options
def job(
    name: Annotated[str, typer.Argument()],
    llm: LLMFlags,
    seed: SeedOpt = None,
    sets: Annotated[list[str] | None, typer.Option("--set")] = None,
) -> None:
    tree = load_with_flags(Tree, CONFIG_FILE["path"], sets, llm.overrides())
    seen["settings"], seen["runner"] = tree.llm, tree.runner
    seen["run"] = (name, llm.limit, llm.resume, seed)


@app.command("bench")
@endpoint_options
def bench(endpoint: EndpointFlags, limit: Annotated[int | None, typer.Option("--limit")] = None) -> None:
    seen["endpoint"], seen["limit"] = endpoint, limit


def test_all_options_reach_the_settings(tmp_path):
    args = [
        "--model", "anthropic/claude-x", "--api-base", "http://127.0.0.1:9/v1", "--api-key-env", "MY_KEY",
        "--env-file", str(tmp_path / ".env"), "--max-concurrency", "16", "--max-qps", "2.5",
        "--cache", str(tmp_path / "c.sqlite"), "--limit", "5", "--resume", "--seed", "7",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["job", "x", *args])
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (s.model, s.api_base, s.api_key_env, s.env_file) == (
        "anthropic/claude-x",
        "http://127.0.0.1:9/v1",
        "MY_KEY",
        tmp_path / ".env",
    )
    assert (s.max_concurrency, s.max_qps, s.cache, s.timeout_s) == (16, 2.5, tmp_path / "c.sqlite", 30)
    assert seen["run"] == ("x", 5, True, 7)
    assert seen["runner"].concurrency == 16 and seen["runner"].resume is True


def test_options_left_out_keep_the_base_and_defaults():
    result = CliRunner().invoke(app, ["job", "y"])
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (s.model, s.max_concurrency, s.max_qps, s.cache) == ("local/smollm2", 3, None, None)
    assert seen["run"] == ("y", None, False, None)
    assert load_with_flags(Tree, None, None, {}).llm == LLMSettings()


def test_set_wins_over_flags_and_reaches_the_runner():
    result = CliRunner().invoke(
        app, ["job", "z", "--max-concurrency", "16", "--set", "llm.max_concurrency=5", "--limit", "4"]
    )
    assert result.exit_code == 0, result.output
    assert seen["settings"].max_concurrency == 5 and seen["runner"].concurrency == 16
    assert seen["runner"].limit == 4


def test_bad_values_are_refused():
    assert CliRunner().invoke(app, ["job", "x", "--max-concurrency", "0"]).exit_code == 2
    with pytest.raises(ConfigError, match="max_qps"):
        load_with_flags(Tree, None, ["llm.max_qps=-1.0"], {})


def test_help_lists_every_option():
    result = CliRunner().invoke(app, ["job", "--help"], env={"COLUMNS": "200"})
    for flag in ("--model", "--api-base", "--api-key-env", "--env-file", "--max-concurrency", "--max-qps",
                 "--cache", "--limit", "--resume", "--overwrite", "--seed", "--set"):  # fmt: skip
        assert flag in result.output


def test_endpoint_options_are_the_subset_without_model_and_runner():
    result = CliRunner().invoke(app, ["bench", "--api-base", "http://h/v1", "--cache", "c.sqlite", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert seen["endpoint"] == EndpointFlags(api_base="http://h/v1", cache=Path("c.sqlite")) and seen["limit"] == 3
    assert set(seen["endpoint"].overrides()) == {f"llm.{k}" for k in vars(seen["endpoint"])}
    assert CliRunner().invoke(app, ["bench", "--model", "x"]).exit_code == 2  # not one of its options
