"""The options every LLM-using command takes, defined once (typer `Annotated` aliases).

    @app.command()
    def vibes(model: ModelOpt = None, api_base: ApiBaseOpt = None, api_key_env: ApiKeyEnvOpt = None,
              env_file: EnvFileOpt = None, max_concurrency: MaxConcurrencyOpt = None, max_qps: MaxQpsOpt = None,
              cache: CacheOpt = None, limit: LimitOpt = None, resume: ResumeOpt = False, seed: SeedOpt = 0):
        settings = llm_settings_from_options(model=model, api_base=api_base, api_key_env=api_key_env,
                                             env_file=env_file, max_concurrency=max_concurrency,
                                             max_qps=max_qps, cache=cache, base=config.llm)

An option left out (None) keeps the value of `base` (e.g. the [llm] section of a config file), or
the LLMSettings default. --limit, --resume and --seed belong to the command's own run, not to the
LLM settings: the command passes them on.
"""

from __future__ import annotations

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


def llm_settings_from_options(
    *,
    model: str | None = None,
    api_base: str | None = None,
    api_key_env: str | None = None,
    env_file: Path | None = None,
    max_concurrency: int | None = None,
    max_qps: float | None = None,
    cache: Path | None = None,
    base=None,
):
    """`base` (an LLMSettings, or None for the defaults) with the options that were given applied.

    Validated like a config file: a bad value is a one-line ConfigError."""
    from assay.config import validate
    from assay.llm.settings import LLMSettings

    tree = base.model_dump() if base is not None else {}
    given = {
        "model": model,
        "api_base": api_base,
        "api_key_env": api_key_env,
        "env_file": env_file,
        "max_concurrency": max_concurrency,
        "max_qps": max_qps,
        "cache": cache,
    }
    tree.update({k: v for k, v in given.items() if v is not None})
    return validate(LLMSettings, tree)
