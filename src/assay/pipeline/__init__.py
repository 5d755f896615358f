"""Pipelines of LLM calls over JSONL rows (docs/architecture.md): the row runner (runner.py:
concurrency, exact resume, an errors file, an error-rate monitor) and the step (step.py: guards,
run_config.json, one LLM client, the summary) that every step of `assay synth` and `assay correct`
is built on."""
