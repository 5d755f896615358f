"""Training the transformer: one loop (trainer.py) for every objective; a task (task.py) supplies what
an objective changes, looked up in a task table (the core's own in lm_tasks.py and stream_tasks.py).
Also the config, the checkpoint, the ELBO and bits/char (likelihood.py), the optimizer and schedule,
DDP (distributed.py), metrics, `assay eval` (evaluate.py) and `assay report` (report.py).
See docs/architecture.md, docs/likelihood.md and docs/masking.md."""
