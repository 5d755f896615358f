"""The connectives experiment (docs/connectives.md): does masking logical connectives on purpose
teach a masked LM to recover them better than random masking does? On the King James Bible, with
whole books held out for testing.

    config.py      ConnectiveStage (the masking stage), the run and experiment configs
    inventory.py   the connective inventory (connectives.toml), the finder, per-token annotations
    policy.py      the masking strategies (uniform, weighted, structural, contrastive, chain)
    task.py        ConnectiveTask (objective "connectives") and its model with a class head
    evaluate.py    recovery of held-out connectives, with frequency baselines
    experiment.py  `assay experiment connectives`: every strategy x seed, tables and plots

It plugs into training through its task table (`task.TASKS`); the core never imports it.
"""
