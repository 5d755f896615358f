"""The `assay` command: every subcommand registered here, explicitly. Each maps its options onto a
typed function in its own subpackage; heavy imports happen inside the commands, so `assay --help`
is instant."""

from __future__ import annotations

import sys

import typer

from assay.cli import judges, serve, train
from assay.cli.correct import correct_app
from assay.cli.experiment import experiment_app
from assay.cli.music import music_app
from assay.cli.synth import synth_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="assay: small text models (one transformer, three heads) and the data tools around them.",
)

app.command("train")(train.train)
app.command("eval")(train.evaluate)
app.command("generate")(train.generate)
app.command("report")(train.report)
app.add_typer(train.data_app, name="data")
app.command("score")(judges.score)
app.command("serve")(serve.serve)
app.add_typer(synth_app, name="synth")
app.add_typer(correct_app, name="correct")
app.add_typer(music_app, name="music")
app.add_typer(experiment_app, name="experiment")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one `error: ...` line and exit code 2."""
    from assay.errors import AssayError

    try:
        code = app(args=argv, standalone_mode=False, prog_name="assay")
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
