"""The options every LLM-using command takes, defined once (typer `Annotated` aliases).

    @app.command()
    def vibes(model: ModelOpt = None, api_base: ApiBaseOpt = None, api_key_env: ApiKeyEnvOpt = None,
              env_file: EnvFileOpt = None, max_concurrency: MaxConcurrencyOpt = None, max_qps: MaxQpsOpt = None,
              cache: CacheOpt = None, limit: LimitOpt = None, resume: ResumeOpt = False, seed: SeedOpt = 0):
        flags = llm_flags(model, api_base, api_key_env, env_file, max_concurrency, max_qps, cache,
                          limit, resume, overwrite)
        cfg = load_with_flags(SynthConfig, config_file, sets, flags | {"vibes.seed": seed})

An option left out (None) keeps the value of the config file (its [llm] and [runner] sections), or
the default. --seed belongs to each command's own section: the command maps it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="LLM: openai/NAME, anthropic/NAME, local/smollm2, or any LiteLLM model string (default local/smollm2).",
    ),
]
ApiBaseOpt = Annotated[
    str | None,
    typer.Option("--api-base", metavar="URL", help="An OpenAI-compatible endpoint, e.g. http://localhost:8000/v1."),
]
ApiKeyEnvOpt = Annotated[
    str | None,
    typer.Option("--api-key-env", metavar="NAME", help="Environment variable holding the API key."),
]
EnvFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--env-file", metavar="PATH", help="KEY=VALUE file to read API keys from (wins over the environment)."
    ),
]
MaxConcurrencyOpt = Annotated[
    int | None, typer.Option("--max-concurrency", min=1, help="LLM requests in flight at once (default 8).")
]
MaxQpsOpt = Annotated[
    float | None, typer.Option("--max-qps", min=0.001, help="LLM requests per second at most (default: no limit).")
]
CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache", metavar="PATH", help="SQLite response cache (reruns replay its answers)."),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=0, help="Process at most this many input records.")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume/--no-resume", help="Continue an interrupted run in the same output folder.")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed (sampling, splits, LLM requests).")]


def llm_flags(
    model, api_base, api_key_env, env_file, max_concurrency, max_qps, cache, limit, resume, overwrite
) -> dict[str, object]:
    """The shared options as config keys of a tree with [llm] and [runner] sections."""
    return {
        "llm.model": model,
        "llm.api_base": api_base,
        "llm.api_key_env": api_key_env,
        "llm.env_file": env_file,
        "llm.max_concurrency": max_concurrency,
        "runner.concurrency": max_concurrency,
        "llm.max_qps": max_qps,
        "llm.cache": cache,
        "runner.limit": limit,
        "runner.resume": resume or None,  # flags off by default: False = "not given", so the file's value holds
        "runner.overwrite": overwrite or None,
    }


def load_with_flags(cls, config: Path | None, sets: list[str] | None, flags: dict[str, object]):
    """Config tree `cls`: the TOML file `config` (or the defaults), then the flags that were given
    (None means "not given"), then the `--set key=value` overrides; last wins.
    A bad value is a one-line ConfigError."""
    from assay.config import load_config

    overrides = [f"{key}={_toml(value)}" for key, value in flags.items() if value is not None]
    return load_config(cls, config, overrides + list(sets or []))


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(str(v)) for v in value) + "]"
    return json.dumps(str(value))
