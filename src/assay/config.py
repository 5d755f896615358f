"""The one config mechanism of assay: typed sections (pydantic), TOML files, `--set key=value`.

Every command that trains or runs a pipeline describes its options as a tree of `Section`
models. `load_config` reads a TOML file, applies dotted overrides and validates the result,
gathering *all* problems into one `ConfigError` line:

    cfg = load_config(TrainingConfig, assay.configs.resolve("shakespeare_char"),
                      ["train.max_iters=500", "model.dropout=0.1", "masking.stages.0.rate=[0.1, 0.9]"])

Override values are parsed as TOML values (ints, floats, bools, strings, lists, inline tables);
`none`/`null` mean None and anything that is not valid TOML is taken as a plain string, so
`--set run.out_dir=runs/x` needs no quotes. TOML itself has no null: in a config file the string
"none" (or "null") stands for None.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from assay.errors import ConfigError

T = TypeVar("T", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def parse_value(text: str) -> Any:
    """Parse one `--set` value: TOML scalar/list/table, `none`, or a bare string."""
    stripped = text.strip()
    if stripped.lower() in {"none", "null"}:
        return None
    if stripped.lower() in {"true", "false"}:
        return stripped.lower() == "true"
    try:
        return tomllib.loads(f"v = {stripped}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if stripped.startswith("[") and stripped.endswith("]"):
        # Lists of bare words, e.g. [a, b] or [1, none]
        inner = stripped[1:-1].strip()
        return [] if not inner else [parse_value(part) for part in inner.split(",")]
    return stripped


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` assignment to a nested dict in place (list items by index)."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not of the form key=value")
    key, _, raw = assignment.partition("=")
    if any(not p for p in key.strip().split(".")):
        raise ConfigError(f"override {assignment!r} has an empty key")
    set_key(tree, key.strip(), parse_value(raw))


def set_key(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted `key` (`a.b.c`, list items by index) of a nested dict in place to `value`,
    making the missing sections."""
    parts = key.split(".")
    node: Any = tree
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, parts[: depth + 1])]
        else:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, (dict, list)):
                raise ConfigError(f"override {key}: {'.'.join(parts[: depth + 1])} is a value, not a section")
            node = nxt
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, parts)] = value
    else:
        node[last] = value


def _list_index(node: list, part: str, path: list[str]) -> int:
    try:
        index = int(part)
    except ValueError:
        raise ConfigError(f"override {'.'.join(path)}: expected a list index, got {part!r}") from None
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override {'.'.join(path)}: index {index} out of range (list has {len(node)} items)")
    return index


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tree of a TOML file, or of a shipped config named `path` (`shakespeare_char`)."""
    from assay.configs import resolve

    path = resolve(path)
    try:
        return _nones(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _nones(node: Any) -> Any:
    """The strings "none"/"null" -> None, anywhere in a parsed TOML tree."""
    if isinstance(node, dict):
        return {k: _nones(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_nones(v) for v in node]
    return None if isinstance(node, str) and node.lower() in {"none", "null"} else node


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: dict[str, Any] | None = None,
) -> T:
    """Build a validated config: `base` dict, then the TOML file, then the overrides."""
    return validate(cls, build_tree(path, overrides, base))


def build_tree(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The raw config tree `load_config` validates (for a caller that picks the class from it)."""
    tree: dict[str, Any] = json.loads(json.dumps(base)) if base else {}
    if path is not None:
        _deep_merge(tree, read_toml(path))
    for assignment in overrides:
        apply_override(tree, assignment)
    return tree


def validate(cls: type[T], tree: dict[str, Any]) -> T:
    try:
        return cls.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError("invalid config: " + describe_errors(exc, cls)) from None


def describe_errors(exc: ValidationError, cls: type[BaseModel]) -> str:
    """All validation problems of a config on one line, unknown keys with a 'did you mean' hint."""
    messages = []
    for err in exc.errors():
        loc, owner = _walk(cls, list(err["loc"]))
        where = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            names = list(getattr(owner, "model_fields", {}))
            close = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(names)})"
            messages.append(f"{where}: unknown key{hint}")
        else:
            messages.append(f"{where}: {error_message(err)}")
    return "; ".join(dict.fromkeys(messages))


def validation_message(
    exc: ValidationError, prefix: str = "", root: str = "(top level)", limit: int | None = None
) -> str:
    """A pydantic ValidationError as one line, `path: message; path: message` (the paths under
    `prefix`, `root` for the top level), at most `limit` problems, then how many more there were."""
    lines = list(dict.fromkeys(f"{error_path(err, prefix, root)}: {error_message(err)}" for err in exc.errors()))
    shown = lines if limit is None else lines[:limit]
    more = len(lines) - len(shown)
    return "; ".join(shown) + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def error_path(err: dict[str, Any], prefix: str = "", root: str = "(top level)") -> str:
    loc = [str(p) for p in err["loc"]]
    return ".".join([prefix, *loc] if prefix else loc) or root


def error_message(err: dict[str, Any]) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) in plain words, without its path."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error" and "expected" in ctx:
        options = ctx["expected"].replace("'", "").replace(" or ", ", ")
        return f"{value!r} is not one of {options}"
    if kind == "string_pattern_mismatch" and "pattern" in ctx:
        return f"{value!r} does not match the pattern {ctx['pattern']}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    message = err["msg"].removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _walk(cls: type[BaseModel], loc: list[Any]) -> tuple[list[str], Any]:
    """Follow an error location through the schema.

    Returns the location without pydantic's union-tag parts (e.g. the 'sticky' in
    masking.stages.0.sticky.p1) and the model that owns the last key.
    """
    shown: list[str] = []
    node: Any = cls
    owner: Any = cls
    for part in loc:
        members = _models_in(node)
        if isinstance(part, int):
            shown.append(str(part))
            node = _list_item(node)
            continue
        tagged = [m for m in members if _tag(m) == part]
        if tagged and not any(part in m.model_fields for m in members):
            node = tagged[0]
            continue
        shown.append(str(part))
        owner = members[0] if len(members) == 1 else node
        field = next((m.model_fields[part] for m in members if part in m.model_fields), None)
        node = field.annotation if field is not None else None
    return shown, owner


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_models_in(arg))
    return found


def _list_item(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", ())
    return args[0] if args else None


def _tag(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("kind")
    return field.default if field is not None else None


def _deep_merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def to_dict(cfg: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of a config (the form saved with runs and checkpoints)."""
    return cfg.model_dump(mode="json")
