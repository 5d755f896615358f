"""`assay correct ...`: the self-correction pipeline (docs/correct.md). Every option lives in the
`CorrectRun` tree ([llm], [runner], [correct], [compare], [classifier]): set it in a TOML file (`-c`),
with the flags below, or with `--set key=value` (applied in that order, last wins)."""

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
    llm_flags,
    load_with_flags,
)

correct_app = typer.Typer(
    no_args_is_help=True, help="Self-correction: answer, reprompt under a learned policy, log traces."
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (CorrectRun).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config key, e.g. correct.max_turns=2.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Start the output afresh.")]
ProgressOpt = Annotated[bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="gsm8k, hotpotqa, boolq, csv or jsonl.")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="Question file (default: the shipped sample).")]
MaxTurnsOpt = Annotated[int | None, typer.Option("--max-turns", min=0, help="Reprompts per question at most (3).")]
LambdaOpt = Annotated[float | None, typer.Option("--lambda", help="Reward cost per token (0.001).")]
CheckerOpt = Annotated[str | None, typer.Option("--checker", help="gsm8k, hotpotqa, boolq, exact or file.py:fn.")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", help="Sampling temperature (0).")]
ClassifierOpt = Annotated[
    Path | None, typer.Option("--classifier", help="Trained classifier folder for the policy context.")
]


@correct_app.callback()
def _group() -> None:
    """Self-correction: answer, reprompt under a learned policy, log traces (docs/correct.md)."""


def _correct_flags(dataset, data, max_turns, lam, checker, temperature, classifier, seed) -> dict[str, object]:
    return {
        "correct.dataset": dataset,
        "correct.data": data,
        "correct.max_turns": max_turns,
        "correct.lam": lam,
        "correct.checker": checker,
        "correct.temperature": temperature,
        "correct.classifier": classifier,
        "correct.seed": seed,
    }


@correct_app.command("run")
def run_cmd(
    out: OutOpt,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    policy: Annotated[str | None, typer.Option("--policy", help="thompson, epsilon, none, fixed or random.")] = None,
    template: Annotated[str | None, typer.Option("--template", help="Template id for --policy fixed.")] = None,
    max_turns: MaxTurnsOpt = None,
    policy_state: Annotated[
        Path | None, typer.Option("--policy-state", help="Policy JSON, reloaded if present (default OUT/policy.json).")
    ] = None,
    lam: LambdaOpt = None,
    checker: CheckerOpt = None,
    temperature: TemperatureOpt = None,
    classifier: ClassifierOpt = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    env_file: EnvFileOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    max_qps: MaxQpsOpt = None,
    cache: CacheOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    seed: SeedOpt = None,
    progress: ProgressOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Answer each question, reprompt under the policy; write traces.jsonl, summary.json, plots; print the summary."""
    from assay.pipelines.correct.config import CorrectRun
    from assay.pipelines.correct.engine import run_correct
    from assay.pipelines.correct.summary import format_summary

    flags = llm_flags(model, api_base, api_key_env, env_file, max_concurrency, max_qps, cache, limit, resume, overwrite)
    flags |= _correct_flags(dataset, data, max_turns, lam, checker, temperature, classifier, seed)
    flags |= {
        "correct.policy": policy,
        "correct.template": template,
        "correct.policy_state": policy_state,
        "runner.progress": progress,
    }
    cfg = load_with_flags(CorrectRun, config, set_, flags)
    summary = run_correct(cfg.correct, out, cfg.llm, cfg.runner)
    typer.echo(format_summary(summary))
    typer.echo(f"output in {out}")


@correct_app.command("compare")
def compare_cmd(
    out: OutOpt,
    policies: Annotated[
        str | None, typer.Option("--policies", help="Comma list (default never,fixed,random,thompson).")
    ] = None,
    fixed_template: Annotated[
        str | None, typer.Option("--fixed-template", help="Template of the fixed policy (step_redo).")
    ] = None,
    learned_state: Annotated[
        Path | None, typer.Option("--learned-state", help="Start the learning policies from this saved policy.")
    ] = None,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    max_turns: MaxTurnsOpt = None,
    lam: LambdaOpt = None,
    checker: CheckerOpt = None,
    temperature: TemperatureOpt = None,
    classifier: ClassifierOpt = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    env_file: EnvFileOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    max_qps: MaxQpsOpt = None,
    cache: CacheOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    seed: SeedOpt = None,
    progress: ProgressOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run fixed and learned policies on the same questions (OUT/<policy>/) and print the comparison table."""
    from assay.pipelines.correct.compare import format_compare, run_compare
    from assay.pipelines.correct.config import CorrectRun

    flags = llm_flags(model, api_base, api_key_env, env_file, max_concurrency, max_qps, cache, limit, resume, overwrite)
    flags |= _correct_flags(dataset, data, max_turns, lam, checker, temperature, classifier, seed)
    names = [p.strip() for p in policies.split(",") if p.strip()] if policies is not None else None
    flags |= {
        "compare.policies": names,
        "compare.fixed_template": fixed_template,
        "compare.learned_state": learned_state,
        "runner.progress": progress,
    }
    cfg = load_with_flags(CorrectRun, config, set_, flags)
    rows = run_compare(cfg, out)
    typer.echo(format_compare(rows))
    typer.echo(f"output in {out} (compare.md, compare.json, compare.png, <policy>/)")


@correct_app.command("train-classifier")
def train_classifier_cmd(
    traces: Annotated[list[Path], typer.Argument(help="traces.jsonl files of correction runs.")],
    out: OutOpt,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Full-batch epochs (300).")] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train the failure-mode + confidence classifier on traces; print held-out metrics vs majority baselines."""
    from assay.pipelines.correct.classifier import format_metrics, train_classifier
    from assay.pipelines.correct.config import CorrectRun

    cfg = load_with_flags(CorrectRun, config, set_, {"classifier.epochs": epochs, "classifier.seed": seed})
    metrics = train_classifier(traces, out, cfg.classifier)
    typer.echo(format_metrics(metrics))
    typer.echo(f"classifier saved to {out} (model.safetensors, classifier.json)")
