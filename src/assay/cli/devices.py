"""`--device`, the one option of every command that runs a trained model (`assay generate`, `eval`,
`score`, `serve`, `data produce`). Not given (None) means auto, or the config's own device key
where the command has one (`server.device`); `assay.devices.resolve_device` checks it."""

from __future__ import annotations

from typing import Annotated

import typer

DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        metavar="DEVICE",
        help="Where the model runs: auto (a CUDA GPU if torch sees one, else the CPU), cpu, cuda, cuda:N or mps.",
        show_default="auto",
    ),
]
