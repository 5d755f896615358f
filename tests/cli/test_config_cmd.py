"""`assay config list | show`: the shipped configs, listed and printed (CliRunner on the group)."""

from __future__ import annotations

from typer.testing import CliRunner

from assay import configs
from assay.cli.config_cmd import config_app
from assay.errors import ConfigError

runner = CliRunner()


def test_list_shows_every_name_and_its_first_comment_line():
    result = runner.invoke(config_app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == configs.names()
    for line, name in zip(lines, configs.names(), strict=True):
        first = next(t for t in configs.text(name).splitlines() if t.startswith("#"))
        assert line.endswith(first.lstrip("#").strip())


def test_show_round_trips_to_the_exact_file(tmp_path):
    for name in ("shakespeare_char", "synth_local.toml"):
        result = runner.invoke(config_app, ["show", name])
        assert result.exit_code == 0, result.output
        assert result.stdout == configs.resolve(name).read_text(encoding="utf-8")
        copy = tmp_path / "my.toml"  # what `assay config show NAME > my.toml` leaves
        copy.write_text(result.stdout, encoding="utf-8")
        assert copy.read_bytes() == configs.resolve(name).read_bytes()


def test_show_an_unknown_name_fails_in_one_line_listing_the_names():
    result = runner.invoke(config_app, ["show", "nope"])
    assert result.exit_code != 0 and result.stdout == ""
    # a ConfigError: `assay` (cli/main.py) prints it as one `error:` line and exits 2
    assert isinstance(result.exception, ConfigError)
    message = str(result.exception)
    assert "\n" not in message and "nope" in message
    assert all(name in message for name in configs.names())


def test_help_of_each_command_ends_with_its_example():
    for command, example in (("list", "assay config list"), ("show", "assay config show shakespeare_char > my.toml")):
        result = runner.invoke(config_app, [command, "--help"])
        assert result.exit_code == 0, result.output
        lines = [line.strip() for line in result.output.splitlines() if line.strip()]
        assert "Example:" in lines
        assert lines[lines.index("Example:") + 1] == example


def test_no_command_shows_the_help():
    result = runner.invoke(config_app, [])
    assert "list" in result.output and "show" in result.output
