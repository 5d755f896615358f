"""The options shared by several commands, defined once.

Plain options are `Annotated` aliases (`ConfigOpt`, `SetOpt`, `JsonOpt`, ...). The LLM and runner
options of every LLM-using command are declared once, as the fields of `LLMFlags` (and of its base
`EndpointFlags`), and added to a command by the `@llm_options` (`@endpoint_options`) decorator,
which hands them to the command as one argument:

    @app.command("vibes")
    @llm_options
    def vibes(input_dir: InputDirOpt, llm: LLMFlags, seed: SeedOpt = None, config: ConfigOpt = None, ...):
        cfg = load_with_flags(SynthConfig, config, set_, llm.overrides() | {"vibes.seed": seed})

A flag left out (None) keeps the value of the config file (its [llm] and [runner] sections), or the
default; then `--set key=value` overrides win.
"""

import functools
import inspect
import json
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal

import typer


def _config_file(path: Path | None) -> Path | None:
    """A config given with -c: a file, or the name of a shipped config (`assay config list`); not
    empty, at most CONFIG_MAX (it is read whole)."""
    if path is None:
        return None
    from assay.configs import resolve
    from assay.errors import ConfigError
    from assay.io import CONFIG_MAX, human

    path = resolve(path)
    size = path.stat().st_size
    if size == 0:
        raise ConfigError(f"config file {path} is empty")
    if size > CONFIG_MAX:
        raise ConfigError(f"config file {path} is too large ({human(size)}; a config is at most {human(CONFIG_MAX)})")
    return path


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE|NAME",
        callback=_config_file,
        help="A TOML config file, or a shipped config's name (`assay config list`).",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config key: --set section.key=value (repeat; null, true and [a, b] work).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
CheckpointOpt = Annotated[
    Literal["best", "last"], typer.Option("--checkpoint", help="Which checkpoint of a run: best or last.")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed (sampling, splits, LLM requests).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Start the output afresh.")]
InputDirOpt = Annotated[
    Path, typer.Option("--input-dir", metavar="DIR", help="Folder with the previous step's JSONL files.")
]
OutputDirOpt = Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for this step's JSONL files.")]
ProgressOpt = Annotated[bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        metavar="DEVICE",
        help="Where the model runs: auto (a CUDA GPU if torch sees one, else the CPU), cpu, cuda, cuda:N or mps.",
        show_default="auto",
    ),
]  # every command that runs a trained model; None: auto, or the config's own device key (server.device)


@dataclass
class EndpointFlags:
    """Where LLM requests go and how fast (None: not given)."""

    api_base: Annotated[
        str | None,
        typer.Option("--api-base", metavar="URL", help="An OpenAI-compatible endpoint, e.g. http://localhost:8000/v1."),
    ] = None
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", metavar="NAME", help="Environment variable holding the API key.")
    ] = None
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file", metavar="PATH", help="KEY=VALUE file to read API keys from (wins over the environment)."
        ),
    ] = None
    max_concurrency: Annotated[
        int | None, typer.Option("--max-concurrency", min=1, help="LLM requests in flight at once.  [default: 8]")
    ] = None
    max_qps: Annotated[
        float | None, typer.Option("--max-qps", min=0.001, help="LLM requests per second at most.  [default: no limit]")
    ] = None
    cache: Annotated[
        Path | None, typer.Option("--cache", metavar="PATH", help="SQLite response cache (reruns replay its answers).")
    ] = None
    structured: Annotated[
        Literal["auto", "json_schema", "json_object_schema", "json_object", "prompt"] | None,
        typer.Option(
            "--structured",
            help="How a JSON Schema goes to the endpoint: auto (the first mode it accepts), json_schema, "
            "json_object_schema (llama.cpp's server), json_object or prompt.  [default: auto]",
        ),
    ] = None

    def overrides(self) -> dict[str, object]:
        """The flags as keys of a config tree with an [llm] section."""
        return {
            "llm.structured": self.structured,
            "llm.api_base": self.api_base,
            "llm.api_key_env": self.api_key_env,
            "llm.env_file": self.env_file,
            "llm.max_concurrency": self.max_concurrency,
            "llm.max_qps": self.max_qps,
            "llm.cache": self.cache,
        }


@dataclass
class LLMFlags(EndpointFlags):
    """The LLM and runner options of every LLM pipeline step (None: not given)."""

    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="MODEL",
            help="LLM: openai/NAME, anthropic/NAME, local/smollm2, or any LiteLLM model string.  "
            "[default: local/smollm2]",
        ),
    ] = None
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="Process at most this many input records.")] = None
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in the output folder.")] = False
    overwrite: OverwriteOpt = False

    def overrides(self) -> dict[str, object]:
        """The flags as keys of a config tree with [llm] and [runner] sections."""
        return super().overrides() | {
            "llm.model": self.model,
            "runner.concurrency": self.max_concurrency,
            "runner.limit": self.limit,
            "runner.resume": self.resume or None,  # off by default: False = "not given", the file's value holds
            "runner.overwrite": self.overwrite or None,
        }


RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        metavar="ADDR",
        help="With --engine ray: the cluster to join (auto, ray://HOST:10001).  [default: a local instance]",
    ),
]


@dataclass
class EngineFlags:
    """Where the rows of a pipeline step run (None: not given; docs/scale.md)."""

    engine: Annotated[
        Literal["local", "ray"] | None,
        typer.Option(
            "--engine",
            help="local: this process (asyncio); ray: a pool of Ray actors (pip install 'assay[ray]').  "
            "[default: local]",
        ),
    ] = None
    ray_address: RayAddressOpt = None
    ray_actors: Annotated[
        int | None, typer.Option("--ray-actors", min=1, help="With --engine ray: how many actors.  [default: 2]")
    ] = None

    def overrides(self) -> dict[str, object]:
        """The flags as keys of a config tree with a [runner] section."""
        return {
            "runner.engine": self.engine,
            "runner.ray_address": self.ray_address,
            "runner.ray_actors": self.ray_actors,
        }


def with_flags(flags_class, name: str, last: bool = False):
    """A decorator giving a command the options of `flags_class` (a dataclass of `Annotated` typer
    options); the command receives them as one argument called `name`. Its help lists them after the
    command's required options, or after all its own options with `last`."""
    declared = vars(flags_class).get("__annotations__", {})
    ordered = sorted(fields(flags_class), key=lambda f: f.name not in declared)  # the class's own options first
    names = [f.name for f in ordered]
    hints = typing.get_type_hints(flags_class, include_extras=True)  # (string annotations resolved)

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != name]
        added = [
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
            for f in ordered
        ]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            flags = flags_class(**{n: kwargs.pop(n) for n in names})
            return command(*args, **{name: flags}, **kwargs)

        positional = [p for p in own if p.default is inspect.Parameter.empty]
        optional = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.default is not inspect.Parameter.empty
        ]
        parameters = positional + optional + added if last else positional + added + optional
        wrapper.__signature__ = signature.replace(parameters=parameters)
        return wrapper

    return decorate


llm_options = with_flags(LLMFlags, "llm")  # --model, the endpoint options, --limit, --resume, --overwrite
endpoint_options = with_flags(EndpointFlags, "endpoint")  # the endpoint options only
endpoint_options_last = with_flags(EndpointFlags, "endpoint", last=True)  # the same, after the command's own
engine_options = with_flags(EngineFlags, "engine", last=True)  # --engine, --ray-address, --ray-actors


def load_with_flags(cls, config: Path | None, sets: list[str] | None, flags: dict[str, object]):
    """Config tree `cls`: the TOML file `config` (or the defaults), then the flags that were given
    (None means "not given"), then the `--set key=value` overrides; last wins. A bad value is a
    one-line ConfigError."""
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


def comma_list(value: str | None) -> list[str] | None:
    """A comma-separated option as a list (None: not given)."""
    return [s.strip() for s in value.split(",") if s.strip()] if value is not None else None


def echo_json(summary: Any, **kwargs) -> None:
    typer.echo(json.dumps(summary, indent=2, default=str, **kwargs))
