"""`assay correct ...`: the self-correction pipeline (docs/correct.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from assay.cli.llm_options import (
    ApiBaseOpt,
    ApiKeyEnvOpt,
    CacheOpt,
    EnvFileOpt,
    LimitOpt,
    MaxConcurrencyOpt,
    MaxQpsOpt,
    ModelOpt,
    ResumeOpt,
    SeedOpt,
)

correct_app = typer.Typer(
    no_args_is_help=True, help="Self-correction: answer, reprompt under a learned policy, log traces."
)


@correct_app.callback()
def _group() -> None:
    """Self-correction: answer, reprompt under a learned policy, log traces (docs/correct.md)."""


@correct_app.command("run")
def run_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output folder (traces.jsonl, summary.json, policy.json).")],
    dataset: Annotated[str, typer.Option("--dataset", help="gsm8k, hotpotqa, boolq, csv or jsonl.")] = "gsm8k",
    data: Annotated[Path | None, typer.Option("--data", help="Question file (default: the shipped sample).")] = None,
    policy: Annotated[str, typer.Option("--policy", help="thompson, epsilon, none, fixed or random.")] = "thompson",
    template: Annotated[str | None, typer.Option("--template", help="Template id for --policy fixed.")] = None,
    max_turns: Annotated[int, typer.Option("--max-turns", min=0, help="Reprompts per question at most.")] = 3,
    policy_state: Annotated[
        Path | None, typer.Option("--policy-state", help="Policy JSON, reloaded if present (default OUT/policy.json).")
    ] = None,
    lam: Annotated[float, typer.Option("--lambda", help="Reward cost per token.")] = 0.001,
    checker: Annotated[
        str | None, typer.Option("--checker", help="gsm8k, hotpotqa, boolq, exact or module:fn.")
    ] = None,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.")] = 0.0,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    env_file: EnvFileOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    max_qps: MaxQpsOpt = None,
    cache: CacheOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start the output afresh.")] = False,
    seed: SeedOpt = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Answer each question, reprompt under the policy, write traces.jsonl and summary.json; print the summary."""
    from assay.config import validate
    from assay.errors import AssayError

    try:
        from assay.cli.llm_options import llm_settings_from_options
        from assay.pipelines.correct.engine import CorrectConfig, run_correct
        from assay.pipelines.correct.summary import format_summary
        from assay.pipelines.runner import RunnerSettings

        config = validate(
            CorrectConfig,
            {
                "dataset": dataset,
                "data": data,
                "checker": checker,
                "policy": policy,
                "template": template,
                "max_turns": max_turns,
                "lam": lam,
                "temperature": temperature,
                "seed": seed if seed is not None else 0,
                "policy_state": policy_state,
            },
        )
        llm = llm_settings_from_options(
            model=model,
            api_base=api_base,
            api_key_env=api_key_env,
            env_file=env_file,
            max_concurrency=max_concurrency,
            max_qps=max_qps,
            cache=cache,
        )
        runner = validate(
            RunnerSettings,
            {
                "limit": limit or None,
                "resume": resume,
                "overwrite": overwrite,
                "concurrency": llm.max_concurrency,
                "progress": progress,
            },
        )
        summary = run_correct(config, out, llm, runner)
    except AssayError as exc:
        typer.echo("error: " + " ".join(str(exc).split()), err=True)
        raise typer.Exit(2) from None
    typer.echo(format_summary(summary))
    typer.echo(f"output in {out}")
