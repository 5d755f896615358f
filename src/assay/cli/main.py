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
        _fail(exc.format_message() if hasattr(exc, "format_message") else str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except OSError as exc:  # unreadable/unwritable paths, full disks
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}")
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    sys.exit(code)
