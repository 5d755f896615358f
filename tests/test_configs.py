"""The shipped configs (package data): names, the resolver `-c` uses, and their text."""

from __future__ import annotations

import tomllib

import pytest

from assay import configs
from assay.errors import ConfigError


def test_names_are_the_shipped_toml_files():
    names = configs.names()
    assert names == sorted(names)
    assert {"shakespeare_char", "shakespeare_char_ar", "judge_shakespeare", "synth_local"} <= set(names)
    for name in names:
        path = configs.resolve(name)
        assert path.is_file() and path.name == f"{name}.toml"
        assert path.parent.name == "configs" and path.parent.parent.name == "assay"
        tomllib.loads(configs.text(name))  # valid TOML
        assert configs.summary(name)  # every file says what it is for on its first line


def test_a_name_with_or_without_toml():
    assert configs.resolve("shakespeare_char.toml") == configs.resolve("shakespeare_char")
    assert configs.text("shakespeare_char.toml") == configs.resolve("shakespeare_char").read_text(encoding="utf-8")


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shakespeare_char").write_text("[run]\n")  # a local file named like a shipped config
    assert configs.resolve("shakespeare_char").resolve() == tmp_path / "shakespeare_char"
    mine = tmp_path / "my.toml"
    mine.write_text("[run]\n")
    assert configs.resolve(mine) == mine and configs.resolve(str(mine)) == mine


@pytest.mark.parametrize("spec", ["nope", "configs/shakespeare_char.toml", "../shakespeare_char", ".toml", ""])
def test_unknown_spec_is_one_line_listing_the_names(tmp_path, monkeypatch, spec):
    monkeypatch.chdir(tmp_path)  # none of these exists as a file here
    with pytest.raises(ConfigError) as info:
        configs.resolve(spec)
    message = str(info.value)
    assert message == f"config not found: {spec} (not a file; shipped configs: {', '.join(configs.names())})"
    assert "\n" not in message


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match="not a file; shipped configs: .*shakespeare_char"):
        configs.resolve(tmp_path)


def test_text_of_an_unknown_name():
    with pytest.raises(ConfigError, match=r"no shipped config named 'nope' \(shipped configs: .*synth_local"):
        configs.text("nope")
