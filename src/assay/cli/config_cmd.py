"""`assay config ...`: the config files shipped inside assay (`assay.configs`), to list and to copy."""

from __future__ import annotations

from typing import Annotated

import typer

config_app = typer.Typer(no_args_is_help=True, help="The shipped configs: list them, print one to start from.")


@config_app.callback()
def _group() -> None:
    """The shipped configs: list them, print one to start from."""


@config_app.command("list")
def list_command() -> None:
    """List the shipped configs (any command's `-c NAME` takes these names) and what each is for.

    Example:

    \b
        assay config list
    """
    from assay import configs

    names = configs.names()
    width = max(map(len, names))
    for name in names:
        typer.echo(f"{name:<{width}}  {configs.summary(name)}".rstrip())


@config_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A shipped config (see `assay config list`).")],
) -> None:
    """Print a shipped config's TOML to stdout, to copy and edit.

    Example:

    \b
        assay config show shakespeare_char > my.toml
    """
    from assay import configs

    typer.echo(configs.text(name), nl=False)
