"""`assay llm check`: what an LLM endpoint (or the local model) can do (assay.llm.check, docs/llm.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from assay.cli.options import (
    ConfigOpt,
    EndpointFlags,
    JsonOpt,
    SetOpt,
    echo_json,
    endpoint_options_last,
    load_with_flags,
)

llm_app = typer.Typer(no_args_is_help=True)


@llm_app.callback()
def llm() -> None:
    """The LLM endpoints assay talks to: check what one can do."""


@llm_app.command("check")
@endpoint_options_last
def check(
    endpoint: EndpointFlags,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="MODEL",
            help="openai/NAME, anthropic/NAME, local/smollm2, or any LiteLLM model string.  [default: local/smollm2]",
        ),
    ] = None,
    tokens: Annotated[int, typer.Option("--tokens", min=2, max=4096, help="Answer length of the speed test.")] = 64,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check an endpoint: reachable, the models it lists, which structured-output modes work (one tiny
    request each), the mode `llm.structured = auto` picks, first-token latency, tokens/s, usage.

    Exits with status 2 when the endpoint cannot be reached or takes no structured mode.

    Example:

    \b
        assay llm check --model openai/smollm2 --api-base http://127.0.0.1:8080/v1
    """
    import asyncio

    from assay.config import Section
    from assay.errors import AssayError
    from assay.llm.check import check_endpoint
    from assay.llm.settings import LLMSettings

    class CheckConfig(Section):
        llm: LLMSettings = LLMSettings()

    cfg = load_with_flags(CheckConfig, config, set_, endpoint.overrides() | {"llm.model": model})
    report = asyncio.run(check_endpoint(cfg.llm, speed_tokens=tokens))
    if as_json:
        echo_json(report.to_dict())
    else:
        for line in report.lines():
            typer.echo(line)
    if not report.reachable:
        raise AssayError(f"{cfg.llm.model}: the endpoint did not answer ({report.error})")
    if report.auto_mode is None:
        raise AssayError(f"{cfg.llm.model}: no structured-output mode works ({report.error})")
