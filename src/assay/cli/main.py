"""The `assay` command: every subcommand registered here, explicitly. Each maps its options onto a
typed function in its own subpackage; heavy imports happen inside the commands, so `assay --help`
is instant."""

from __future__ import annotations

import sys
from functools import cache
from typing import Annotated

import typer

from assay.cli import judges, serve, train
from assay.cli.config_cmd import config_app
from assay.cli.correct import correct_app
from assay.cli.experiment import experiment_app
from assay.cli.judge import judge_app
from assay.cli.llm import llm_app
from assay.cli.music import music_app
from assay.cli.synth import synth_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="assay: train small text models and use them, with LLMs, to make and judge data.\n\n"
    "\b\n"
    "  train, generate, eval   a masked-diffusion (or left-to-right) LM on your text\n"
    "  judge, score, serve     judges that spot machine-written text, and a page to try them\n"
    "  synth, music            LLM synthetic data: text -> vibes -> music configs -> scores\n"
    "  correct                 multi-turn self-correction with a learned reprompt policy\n"
    "  experiment              targeted masking of connectives in the King James Bible\n"
    "  config                  the shipped configs, to start from\n"
    "  llm                     check what an LLM endpoint (or the local model) can do\n\n"
    "Run `assay COMMAND -h` for a command's options and an example.",
)


def _version(value: bool) -> None:
    if value:
        from assay.version import __version__

        typer.echo(f"assay {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print assay's version and exit.")
    ] = False,
) -> None:
    """The root of the command tree (its only option is --version)."""


app.command("train")(train.train)
app.command("eval")(train.evaluate)
app.command("generate")(train.generate)
app.command("report")(train.report)
app.add_typer(train.data_app, name="data")
app.add_typer(judge_app, name="judge")
app.command("score")(judges.score)
app.command("serve")(serve.serve)
app.add_typer(synth_app, name="synth")
app.add_typer(correct_app, name="correct")
app.add_typer(music_app, name="music")
app.add_typer(experiment_app, name="experiment")
app.add_typer(config_app, name="config")
app.add_typer(llm_app, name="llm")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one `error: ...` line and exit code 2."""
    from typer._click.exceptions import NoArgsIsHelpError

    from assay.errors import AssayError

    try:
        code = command().main(args=argv, standalone_mode=False, prog_name="assay")
    except NoArgsIsHelpError as exc:  # `assay`, `assay synth`: the help, as -h prints it
        typer.echo(exc.ctx.get_help())
        code = 0
    except AssayError as exc:
        _fail(str(exc))
    except typer.Abort:
        _fail("aborted", 130)
    except typer.exceptions.TyperException as exc:  # usage errors: unknown option, bad value, ...
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(message.replace("Value error, ", ""))  # typer's checks word a bad choice as pydantic does
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # the last resort: a user's bad file that a reader let through
        message = _last_resort(exc)
        if message is None:
            raise  # a bug: keep the traceback
        _fail(message)
    sys.exit(code if isinstance(code, int) else 0)


@cache
def command():
    """The click command tree of `app`, with the house conventions applied (`metavars`)."""
    import typer.main

    root = typer.main.get_command(app)
    metavars(root)
    return root


# What an option takes, by the type typer displays: one word, in capitals.
_METAVARS = {"path": "PATH", "int": "INT", "int range": "INT", "float": "NUMBER", "float range": "NUMBER"}


def metavars(cmd) -> None:
    """Give every option that takes a value and has no metavar of its own one that says what it
    takes (PATH, INT, NUMBER, TEXT, or its choices a|b), instead of typer's `<int range>`;
    arguments are named in capitals (RUN_DIR); a default given as text shows as `[default: X]`
    like every other default."""
    from typer._click import Context

    ctx = Context(cmd)
    for param in cmd.params:
        if isinstance(getattr(param, "show_default", None), str):  # typer would print `[default: (auto)]`
            param.help = f"{param.help or ''}  [default: {param.show_default}]".lstrip()
            param.show_default = False
        if param.param_type_name == "option" and not param.is_flag and param.metavar is None:
            shown = param.display_type(ctx).strip("<>")
            param.metavar = _METAVARS.get(shown) or (shown if "|" in shown else "TEXT")
        elif param.param_type_name == "argument" and param.metavar is None:
            param.metavar = param.name.upper()
            param.display_type_rich = lambda ctx: None  # the name says what it takes: no `<list[Path]>` beside it
    for sub in getattr(cmd, "commands", {}).values():
        metavars(sub)


def _last_resort(exc: Exception) -> str | None:
    """One line for the errors a bad input or a full disk raises where no reader caught them; None
    for anything else. pydantic and safetensors are only consulted if a command imported them."""
    import json

    if isinstance(exc, OSError):  # unreadable/unwritable paths, full disks
        from assay.io import is_disk_full

        where = f": {exc.filename}" if exc.filename else ""
        if is_disk_full(exc):
            return f"disk full or file too large{where or ' (while writing an output)'}"
        return f"{exc.strerror or exc}{where}"
    if isinstance(exc, json.JSONDecodeError):  # before UnicodeError: both are ValueErrors
        return f"a file is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if isinstance(exc, UnicodeError):
        reason = getattr(exc, "reason", str(exc))
        return f"a file is not UTF-8 text ({reason})"
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        from assay.config import validation_message

        return f"invalid value: {validation_message(exc, limit=3)}"
    safetensors = sys.modules.get("safetensors")
    if safetensors is not None and isinstance(exc, safetensors.SafetensorError):
        from assay.io import is_disk_full

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if is_disk_full(exc):
            return f"disk full or file too large (while writing a safetensors file: {first})"
        return f"a safetensors file is corrupt ({first})"
    return None


def _fail(message: str, code: int = 2) -> None:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    sys.exit(code)
