"""LLM settings (one config section shared by every LLM-using command) and API-key resolution.

Keys never live in the settings: `api_key_env` names an environment variable, `env_file` a
KEY=VALUE file to read it from. `resolve_api_key` reads the value at run time and nothing here
prints, logs or serialises it; `public_dict` is what may be written into run_config.json.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field

from assay.config import Section
from assay.errors import ConfigError
from assay.llm.types import LLMError

# The variable each backend kind reads when no --api-key-env is given (LiteLLM knows its own).
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class Prices(Section):
    """USD per one million tokens, overriding LiteLLM's price table for the configured model."""

    input_per_1m: float = Field(0.0, ge=0)
    output_per_1m: float = Field(0.0, ge=0)


class LLMSettings(Section):
    model: str = "local/smollm2"
    api_base: str | None = None  # an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1
    api_key_env: str | None = None  # name of the variable holding the key (never the key itself)
    env_file: Path | None = None  # KEY=VALUE lines; its values win over the process environment
    max_concurrency: int = Field(8, ge=1)
    max_qps: float | None = Field(None, gt=0)  # None: no rate limit
    cache: Path | None = None  # SQLite response cache; None: no cache
    timeout_s: float = Field(120.0, gt=0)  # per attempt
    max_retries: int = Field(6, ge=0)  # retries after the first attempt
    backoff_start_s: float = Field(0.5, ge=0)
    backoff_cap_s: float = Field(8.0, ge=0)
    jitter: Literal["equal", "full", "none"] = "equal"
    repair_attempts: int = Field(1, ge=0)  # structured output: correction rounds after a bad answer
    # Constrained decoding of answers that have a JSON Schema (read by the steps that build such
    # requests: `synth configs`, `synth benchmark`). true: the schema goes with the request (the local
    # model's schema-guided decoder, response_format for API models). false: the same prompt without
    # it, sampled freely, the raw text validated afterwards (guided vs free is then comparable).
    guided: bool = True
    # How a JSON Schema travels to an OpenAI-compatible endpoint or LiteLLM (docs/llm.md, "Structured
    # output"): json_schema (response_format json_schema), json_object_schema (llama.cpp's server:
    # json_object with the schema), json_object (the schema in the prompt too), prompt (the schema in
    # the prompt only; the answer parsed and repaired). auto: the first of these the endpoint accepts,
    # found on the first request and remembered per (api_base, model) in the response cache. The
    # local model (its grammar) and Anthropic (a forced tool) take auto or prompt.
    structured: Literal["auto", "json_schema", "json_object_schema", "json_object", "prompt"] = "auto"
    # The local model's runtime: llama.cpp (`pip install 'assay[llamacpp]'`) or transformers; auto:
    # $ASSAY_LOCAL_BACKEND if set, else llama.cpp where it is installed and can load the model (the
    # shipped GGUF, a .gguf path), else transformers (docs/local_llm.md, measured there).
    local_backend: Literal["auto", "llamacpp", "transformers"] = "auto"
    # OpenAI-compatible endpoints: "sdk" = the openai SDK (over aiohttp), "lean" = assay's own minimal
    # JSON-over-aiohttp transport (no SDK; for high request rates against local servers)
    transport: Literal["sdk", "lean"] = "sdk"
    # The local model's decoder only (API models never see these): guards against loops, as in HF
    # transformers. repetition_penalty > 1 lowers the score of tokens the answer already holds (CTRL);
    # no_repeat_ngram = n > 0 forbids repeating an n-gram of the answer (under guided decoding: within
    # each string, and across an array's items). None: the measured default, 1.3 and 3 for
    # schema-guided answers (docs/results.md, issue 23), off (1.0, 0) for free text. 1.0 and 0: off.
    repetition_penalty: float | None = Field(None, ge=1.0, le=3.0)
    no_repeat_ngram: int | None = Field(None, ge=0, le=16)
    prices: Prices | None = None

    def public_dict(self) -> dict:
        """The settings as JSON-ready data without secrets (api_base loses any user:password and query)."""
        data = self.model_dump(mode="json")
        if self.api_base:
            data["api_base"] = _strip_credentials(self.api_base)
        return data


def _strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "") if parts.username or parts.password else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def read_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines (optional `export `, quotes, # comments) as a dict. Values are never printed:
    a malformed line is reported by its number only."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"env file not found: {path}")
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum():
            raise ConfigError(f"env file {path}: line {number} is not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:  # an unquoted value may carry a trailing comment
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


# The local decoder's loop guards when the settings leave them unset: (repetition_penalty, no_repeat_ngram)
GUIDED_GUARDS = (1.3, 3)
FREE_GUARDS = (1.0, 0)


def loop_guards(settings: LLMSettings, guided: bool) -> tuple[float, int]:
    """The local decoder's (repetition_penalty, no_repeat_ngram) for a guided or free request."""
    penalty, n = GUIDED_GUARDS if guided else FREE_GUARDS
    return (
        settings.repetition_penalty if settings.repetition_penalty is not None else penalty,
        settings.no_repeat_ngram if settings.no_repeat_ngram is not None else n,
    )


def backend_kind(model: str, api_base: str | None = None) -> str:
    """Which backend serves `model`: "local", "anthropic", "openai" (the OpenAI SDK: openai/NAME or
    any model with an api_base) or "litellm" (anything else, or an explicit litellm/ prefix)."""
    if model.startswith("local/"):
        return "local"
    if model.startswith("litellm/"):
        return "litellm"
    if model.startswith("anthropic/"):
        return "anthropic"
    if model.startswith("openai/") or api_base:
        return "openai"
    return "litellm"


def resolve_api_key(settings: LLMSettings, env: dict[str, str] | None = None) -> str | None:
    """The API key for `settings`, or None where none is needed (local model, a keyless local endpoint,
    LiteLLM reading its provider's own variable). `env`: the env file's values if already read.

    Raises a one-line LLMError naming the variable (never its value) when a needed key is missing.
    """
    kind = backend_kind(settings.model, settings.api_base)
    if kind == "local":
        return None
    if env is None:
        env = read_env_file(settings.env_file) if settings.env_file else {}
    name = settings.api_key_env
    # with an api_base the default variable is not read: that would send e.g. an OpenAI key to a third party
    if name is None and kind in DEFAULT_KEY_ENV and not settings.api_base:
        name = DEFAULT_KEY_ENV[kind]
        value = env.get(name) or os.environ.get(name)
        if not value:
            raise LLMError(f"no API key for {settings.model}: set {name} or name a variable with --api-key-env")
        return value
    if name is None:
        return None
    value = env.get(name) or os.environ.get(name)
    if not value:
        where = f" (nor in env file {settings.env_file})" if settings.env_file else ""
        raise LLMError(f"environment variable {name} (from --api-key-env) is not set{where}")
    return value
