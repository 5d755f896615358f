"""The CLI's house conventions, checked on every command of the real command tree (docs/cli.md):
an example in every help, one spelling per flag, metavars that say what they take, defaults shown
one way, `assay` alone is help (exit 0), -h and --version work."""

from __future__ import annotations

import re
import shlex

import pytest

from assay.cli.main import command, main
from assay.version import __version__
from tests.conftest import run_cli


def leaves(cmd=None, path=()):
    """(path, click command) of every runnable command."""
    cmd = cmd or command()
    subs = getattr(cmd, "commands", None)
    if not subs:
        yield path, cmd
        return
    for name, sub in sorted(subs.items()):
        yield from leaves(sub, (*path, name))


LEAVES = list(leaves())
IDS = [" ".join(path) for path, _ in LEAVES]


def options(cmd):
    return [p for p in cmd.params if p.param_type_name == "option"]


def help_of(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*args, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0, out
    return out


def test_the_tree_is_not_empty():
    assert len(LEAVES) >= 25 and ("judge", "train") in dict(LEAVES) and ("config", "show") in dict(LEAVES)


def test_assay_alone_and_a_group_alone_print_help_and_exit_0(capsys):
    code, out, err = run_cli(capsys)
    assert code == 0 and err == "" and out.startswith("Usage: assay") and "Commands:" in out
    for tool in ("train", "judge", "synth", "correct", "serve", "config"):
        assert re.search(rf"^  {tool}\b", out, re.M), tool
    code, out, err = run_cli(capsys, "synth")
    assert code == 0 and err == "" and out.startswith("Usage: assay synth") and "vibes" in out


def test_version_and_short_help(capsys):
    assert run_cli(capsys, "--version")[:2] == (0, f"assay {__version__}\n")
    code, out, _ = run_cli(capsys, "train", "-h")
    assert code == 0 and out.startswith("Usage: assay train")


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=IDS)
def test_every_command_has_an_example_that_parses(path, cmd, capsys):
    text = help_of(capsys, *path)
    assert "Example:" in text, f"`assay {' '.join(path)} --help` has no example"
    examples = [line.strip() for line in text.split("Example:", 1)[1].splitlines() if line.strip().startswith("assay ")]
    assert examples, text
    for example in examples:
        words = shlex.split(example.split(" > ")[0])
        assert words[: 1 + len(path)] == ["assay", *path], example
        # the example's options exist and its required options are there (nothing runs)
        cmd.make_context(" ".join(path), words[1 + len(path) :])


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=IDS)
def test_flag_names_are_consistent(path, cmd):
    names = {opt for p in options(cmd) for opt in (*p.opts, *p.secondary_opts)}
    # one spelling for the output: -o/--out
    assert not names & {"--output-dir", "--output", "--out-dir", "--outdir", "--output-file"}, names
    out = next((p for p in options(cmd) if "--out" in p.opts), None)
    if out is not None:
        assert "-o" in out.opts, f"{path}: --out without -o"
    # one model of restarting: --resume and --overwrite, plain flags, together
    resume = next((p for p in options(cmd) if "--resume" in p.opts), None)
    if resume is not None:
        assert resume.is_flag and not resume.secondary_opts, f"{path}: --resume is not a plain flag"
        assert "--overwrite" in names, f"{path}: --resume without --overwrite"
    # one spelling of the common options
    assert not names & {"--cfg", "--conf", "--format", "--verbose-json", "--no-resume", "--dir"}, names
    if any("--config" in p.opts for p in options(cmd)):
        assert "-c" in names and "--set" in names


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=IDS)
def test_metavars_say_what_an_option_takes(path, cmd):
    for p in options(cmd):
        if p.is_flag:
            continue
        assert p.metavar and "<" not in p.metavar, f"{path} {p.opts}: metavar {p.metavar!r}"
        assert re.fullmatch(r"[A-Z\[][A-Z0-9_=\[\]:|.]*|[a-z0-9_-]+(\|[a-z0-9_-]+)+", p.metavar), p.metavar


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=IDS)
def test_defaults_are_shown_one_way(path, cmd):
    for p in cmd.params:
        text = p.help or ""
        assert not re.search(r"\(default\b|\bdefault \d|Default:", text), f"{path} {p.name}: {text!r}"
        # a default written by hand is in typer's own form, at the end
        if "[default:" in text:
            assert re.search(r"\[default: [^\]]+\]$", text), f"{path} {p.name}: {text!r}"
        # no internal class names, no config keys of another command
        assert not re.search(r"\b[A-Z][A-Za-z]+(Config|Run|Flags)\b", text), f"{path} {p.name}: {text!r}"


def test_policies_have_one_name_each(capsys):
    for args in (("correct", "run"), ("correct", "compare")):
        text = help_of(capsys, *args)
        assert "never" in text and not re.search(r"\bnone\b", text), text


def test_set_does_not_name_another_commands_keys(capsys):
    text = " ".join(help_of(capsys, "serve").split())
    assert "train.max_iters" not in text
