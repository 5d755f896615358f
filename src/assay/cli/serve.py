"""`assay serve`: the web page and JSON API (docs/serve.md). Heavy imports happen inside."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from assay.cli.options import ConfigOpt, DeviceOpt, SetOpt, load_with_flags


def serve(
    judge: Annotated[Path | None, typer.Option("--judge", help="A judge run, or a folder of judge runs.")] = None,
    lm: Annotated[Path | None, typer.Option("--lm", help="A language-model run for /api/generate.")] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on; 127.0.0.1 is this machine only.", show_default="127.0.0.1"),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (0 picks a free one).", show_default="8000")] = None,
    token: Annotated[
        str | None,
        typer.Option(help="/api/* needs `Authorization: Bearer TOKEN` (required beyond loopback).", show_default=False),
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env", metavar="NAME", help="Read the token from this environment variable (not in `ps`)."
        ),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve beyond loopback without a token (prints a warning).")
    ] = False,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", metavar="NAME[:PORT]", help="Also accept this name in the Host header (repeat)."),
    ] = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Serve a page and a JSON API that score texts with a judge (sequence score, per-token
    probabilities) and, with --lm, show diffusion generation step by step. --device (or
    server.device) is where both models run.

    Example:

    \b
        assay serve --judge runs/judges --lm runs/shakespeare_char --port 8000
    """
    from assay.serve.config import ServeConfig
    from assay.serve.server import serve as run_server

    flags = {
        "server.judge": judge,
        "server.lm": lm,
        "server.host": host,
        "server.port": port,
        "server.token": token,
        "server.token_env": token_env,
        "server.no_auth": True if no_auth else None,
        "server.allow_hosts": allow_host,
        "server.device": device,
    }
    run_server(
        load_with_flags(ServeConfig, config, set_, flags), log=typer.echo, warn=lambda m: typer.echo(m, err=True)
    )
