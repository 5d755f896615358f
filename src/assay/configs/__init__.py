"""The config files that ship inside assay (package data), so `-c shakespeare_char` works from any
folder and from an installed wheel, not only from a clone of the repository.

    names()                        ['connectives_kjv', ..., 'synth_local']
    resolve("shakespeare_char")    Path of the shipped file (an existing file path wins)
    text("shakespeare_char")       its TOML text, e.g. to copy and edit (`assay config show`)

Foundation layer: imports only `assay.errors`.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from assay.errors import ConfigError

SUFFIX = ".toml"


def _folder():
    return importlib.resources.files(__name__)


def names() -> list[str]:
    """The shipped configs' names (file names without `.toml`), sorted."""
    return sorted(p.name.removesuffix(SUFFIX) for p in _folder().iterdir() if p.name.endswith(SUFFIX))


def _shipped(name: str) -> Path | None:
    """The shipped file called `name` (with or without `.toml`), or None. A name is a bare file name:
    anything with a path separator is a path, never looked up here."""
    stem = name.removesuffix(SUFFIX)
    if not stem or "/" in name or "\\" in name or stem not in names():
        return None
    # an installed package (wheel or editable) is a plain folder, so the resource is a real file
    return Path(str(_folder() / f"{stem}{SUFFIX}"))


def resolve(spec: str | Path) -> Path:
    """The config file `spec` names: an existing file path first (a user's `my.toml`, or a local
    file that shadows a shipped name), else a shipped config by name (`shakespeare_char` or
    `shakespeare_char.toml`). ConfigError (one line, listing the shipped names) otherwise."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    shipped = _shipped(str(spec))
    if shipped is not None:
        return shipped
    raise ConfigError(f"config not found: {spec} (not a file; shipped configs: {', '.join(names())})")


def text(name: str) -> str:
    """The TOML text of the shipped config `name` (ConfigError if there is none by that name)."""
    shipped = _shipped(name)
    if shipped is None:
        raise ConfigError(f"no shipped config named {name!r} (shipped configs: {', '.join(names())})")
    return shipped.read_text(encoding="utf-8")


def summary(name: str) -> str:
    """The first comment line of a shipped config (what it is for), without the `#`."""
    for line in text(name).splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""
