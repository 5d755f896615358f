"""`assay experiment ...`: experiments, many runs and one comparison."""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli.options import ConfigOpt, SetOpt

experiment_app = typer.Typer(no_args_is_help=True, help="Experiments: many runs, one comparison.")


@experiment_app.command("connectives")
def connectives(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Targeted masking of logical connectives vs random masking (docs/connectives.md): trains
    every strategy for every seed (finished runs are skipped), evaluates on the test books and
    writes results.json, results.md and plots into experiment.out_dir.

    Example:

    \b
        assay experiment connectives -c connectives_kjv --set experiment.seeds=[0]
    """
    from assay.config import load_config
    from assay.experiments.connectives.config import ConnectivesExperimentConfig
    from assay.experiments.connectives.experiment import run_experiment
    from assay.io import writing

    cfg = load_config(ConnectivesExperimentConfig, config, list(set_ or []))
    out = Path(cfg.experiment.out_dir)
    with writing(out):  # a full disk while writing the results (a run's checkpoints name themselves)
        run_experiment(cfg, log=typer.echo)
    typer.echo((out / "results.md").read_text().split("\n## ")[0].rstrip())
    typer.echo(f"results in {out} (results.json, results.md, recovery.png, per_class.png, confusion.png)")
