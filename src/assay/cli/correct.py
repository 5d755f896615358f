"""`assay correct ...`: the self-correction pipeline (docs/correct.md). Every option lives in the
`CorrectRun` tree ([llm], [runner], [correct], [compare], [classifier]): set it in a TOML file (`-c`),
with the flags below, or with `--set key=value` (applied in that order, last wins)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from assay.cli.options import (
    ConfigOpt,
    EngineFlags,
    JsonOpt,
    LLMFlags,
    ProgressOpt,
    SeedOpt,
    SetOpt,
    comma_list,
    echo_json,
    engine_options,
    llm_options,
    load_with_flags,
    with_flags,
)

correct_app = typer.Typer(
    no_args_is_help=True, help="Self-correction: answer, reprompt under a learned policy, log traces."
)

OutOpt = Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder.")]


@dataclass
class EpisodeFlags:
    """The options of an answering run that `run` and `compare` share (None: not given)."""

    dataset: Annotated[
        str | None,
        typer.Option("--dataset", metavar="NAME", help="gsm8k, hotpotqa, boolq, csv or jsonl.  [default: gsm8k]"),
    ] = None
    data: Annotated[
        Path | None, typer.Option("--data", metavar="FILE", help="Question file.  [default: the shipped sample]")
    ] = None
    max_turns: Annotated[
        int | None, typer.Option("--max-turns", min=0, help="Reprompts per question at most.  [default: 3]")
    ] = None
    lam: Annotated[float | None, typer.Option("--lambda", min=0.0, help="Reward cost per token.  [default: 0.001]")] = (
        None
    )
    checker: Annotated[
        str | None,
        typer.Option(
            "--checker",
            metavar="NAME",
            help="gsm8k, hotpotqa, boolq, exact or file.py:fn.  [default: the dataset's]",
        ),
    ] = None
    temperature: Annotated[
        float | None, typer.Option("--temperature", min=0.0, help="Sampling temperature.  [default: 0]")
    ] = None
    classifier: Annotated[
        Path | None,
        typer.Option("--classifier", metavar="DIR", help="Trained classifier folder for the policy context."),
    ] = None
    seed: SeedOpt = None
    progress: ProgressOpt = None

    def overrides(self) -> dict[str, object]:
        return {f"correct.{key}": value for key, value in vars(self).items() if key != "progress"} | {
            "runner.progress": self.progress
        }


episode_options = with_flags(EpisodeFlags, "episode")


@correct_app.callback()
def _group() -> None:
    """Self-correction: answer, reprompt under a learned policy, log traces (docs/correct.md)."""


@correct_app.command("run")
@llm_options
@episode_options
@engine_options
def run_cmd(
    out: OutOpt,
    llm: LLMFlags,
    episode: EpisodeFlags,
    engine: EngineFlags,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            metavar="NAME",
            help="ucb, thompson, shared, epsilon, never, fixed or random.  [default: ucb]",
        ),
    ] = None,
    template: Annotated[
        str | None, typer.Option("--template", metavar="NAME", help="Template id for --policy fixed.")
    ] = None,
    policy_state: Annotated[
        Path | None,
        typer.Option(
            "--policy-state", metavar="FILE", help="Policy JSON, reloaded if present.  [default: OUT/policy.json]"
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Answer each question, reprompt under the policy; write traces.jsonl, summary.json, plots; print the summary.

    Example:

    \b
        assay correct run --dataset gsm8k --limit 20 --policy ucb --out runs/correct
    """
    from assay.correct.config import CorrectRun
    from assay.correct.engine import run_correct
    from assay.correct.summary import format_summary

    flags = llm.overrides() | episode.overrides() | engine.overrides()
    flags |= {"correct.policy": policy, "correct.template": template, "correct.policy_state": policy_state}
    cfg = load_with_flags(CorrectRun, config, set_, flags)
    summary = run_correct(cfg.correct, out, cfg.llm, cfg.runner)
    typer.echo(format_summary(summary))
    typer.echo(f"output in {out}")


@correct_app.command("compare")
@llm_options
@episode_options
def compare_cmd(
    out: OutOpt,
    llm: LLMFlags,
    episode: EpisodeFlags,
    policies: Annotated[
        str | None,
        typer.Option("--policies", metavar="LIST", help="Comma list.  [default: never,fixed,random,ucb]"),
    ] = None,
    fixed_template: Annotated[
        str | None,
        typer.Option("--fixed-template", metavar="NAME", help="Template of the fixed policy.  [default: step_redo]"),
    ] = None,
    learned_state: Annotated[
        Path | None,
        typer.Option("--learned-state", metavar="FILE", help="Start the learning policies from this saved policy."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run fixed and learned policies on the same questions (OUT/<policy>/) and print the comparison table.

    Example:

    \b
        assay correct compare --dataset boolq --limit 40 --policies never,fixed,ucb --out runs/compare
    """
    from assay.correct.compare import format_compare, run_compare
    from assay.correct.config import CorrectRun

    flags = llm.overrides() | episode.overrides()
    flags |= {
        "compare.policies": comma_list(policies),
        "compare.fixed_template": fixed_template,
        "compare.learned_state": learned_state,
    }
    cfg = load_with_flags(CorrectRun, config, set_, flags)
    rows = run_compare(cfg, out)
    typer.echo(format_compare(rows))
    typer.echo(f"output in {out} (compare.md, compare.json, compare.png, <policy>/)")


@correct_app.command("simulate")
def simulate_cmd(
    traces: Annotated[
        list[Path] | None, typer.Argument(help="traces.jsonl files to estimate the rates from.", show_default=False)
    ] = None,
    rates: Annotated[
        Path | None, typer.Option("--rates", metavar="FILE", help="A TOML file of rates (instead of traces).")
    ] = None,
    policies: Annotated[
        str | None,
        typer.Option(
            "--policies",
            metavar="LIST",
            help="Comma list of never, fixed:ARM, fixed:* (every arm), random, epsilon, thompson, shared, ucb.  "
            "[default: never,fixed:*,random,epsilon,thompson,shared,ucb]",
        ),
    ] = None,
    episodes: Annotated[int, typer.Option("--episodes", min=1, help="Episodes per run.")] = 300,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Runs per policy, each with its own seed.")] = 20,
    max_turns: Annotated[
        int | None, typer.Option("--max-turns", min=1, help="Reprompts at most.  [default: the traces' or the file's]")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", help="Write the result as JSON.")] = None,
    save_rates: Annotated[
        Path | None,
        typer.Option("--save-rates", metavar="FILE", help="Also write the rates as a TOML file (for --rates)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run policies on simulated episodes, with rates estimated from traces or given in a TOML file; print
    each policy's reward per episode beside the best fixed policy's (docs/correct.md).

    Example:

    \b
        assay correct simulate runs/cmp/*/traces.jsonl --episodes 300 --seeds 20
    """
    from assay.correct.simulate import compare, format_compare, rates_from_toml, rates_from_traces, rates_to_toml
    from assay.errors import ConfigError
    from assay.io import atomic_write_json, atomic_write_text

    if bool(traces) == (rates is not None):
        raise ConfigError("give traces.jsonl files or --rates FILE (one of the two)")
    model = rates_from_toml(rates) if rates is not None else rates_from_traces(list(traces))
    if max_turns is not None:
        model.max_turns = max_turns
    if save_rates is not None:
        atomic_write_text(save_rates, rates_to_toml(model))
    names = comma_list(policies) or ["never", "fixed:*", "random", "epsilon", "thompson", "shared", "ucb"]
    result = compare(model, names, episodes, seeds)
    if out is not None:
        atomic_write_json(out, result)
    if as_json:
        echo_json(result)
    else:
        typer.echo(format_compare(result))


@correct_app.command("train-classifier")
def train_classifier_cmd(
    traces: Annotated[list[Path], typer.Argument(help="traces.jsonl files of correction runs.")],
    out: OutOpt,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Full-batch epochs.  [default: 300]")] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train the failure-mode + confidence classifier on traces; print held-out metrics vs majority baselines.

    Example:

    \b
        assay correct train-classifier runs/compare/*/traces.jsonl --out runs/classifier
    """
    from assay.correct.classifier import format_metrics, train_classifier
    from assay.correct.config import CorrectRun

    cfg = load_with_flags(CorrectRun, config, set_, {"classifier.epochs": epochs, "classifier.seed": seed})
    metrics = train_classifier(traces, out, cfg.classifier)
    typer.echo(format_metrics(metrics))
    typer.echo(f"classifier saved to {out} (model.safetensors, classifier.json)")
