"""What a training config says, for people: the key reference of docs/train.md, a config as TOML,
and the few lines `assay train` prints before it starts.

    config_reference(tasks)   Markdown: every key of every section (type, default, description),
                              from the pydantic models, so the docs cannot drift from the code
    config_toml(cfg)          a config as a TOML file `-c` reads back (`assay train --print-config`)
    config_summary(cfg)       the run in a few lines: objective, shape, data, schedule, evaluation

A key's description is its `Field(description=...)`; a section's is its class docstring. The task
table (objective -> Task, see train/task.py) brings the sections and masking stages only some
objectives read (the judges' [features]); they are marked with the objectives that read them.
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from assay.config import to_dict
from assay.train.config import TrainingConfig
from assay.train.task import TaskTable


# -- the reference ------------------------------------------------------------------------------
def config_reference(tasks: TaskTable | None = None) -> str:
    """Markdown tables of every key of `assay train`'s config: the sections of TrainingConfig, then
    the sections the config classes of `tasks` add; the kinds of masking stage (of any config)
    under [masking]."""
    base = TrainingConfig
    readers = _readers(tasks or {})
    classes = [base, *readers]
    names = list(base.model_fields) + [n for cls in readers for n in cls.model_fields if n not in base.model_fields]
    out: list[str] = []
    done: set[type[BaseModel]] = set()
    for name in dict.fromkeys(names):
        sections = [cls.model_fields[name].annotation for cls in classes if name in cls.model_fields]
        out += _section(name, list(dict.fromkeys(sections)), done, readers, base)
    return "\n".join(out).rstrip("\n") + "\n"


def _readers(tasks: TaskTable) -> dict[type[TrainingConfig], list[str]]:
    """Config class -> the objectives whose task validates with it."""
    readers: dict[type[TrainingConfig], list[str]] = {}
    for objective, task in tasks.items():
        readers.setdefault(task.config_class, []).append(objective)
    return readers


def _read_by(model: type[BaseModel], where: str, readers, base) -> str:
    """'' when every config reads `model` (at `where`), else which objectives do."""
    if _holds(base, where, model):
        return ""
    names = [objective for cls, objectives in readers.items() if _holds(cls, where, model) for objective in objectives]
    return f"Only for the objective{'s' if len(names) > 1 else ''} {', '.join(names)}." if names else ""


def _holds(cls: type[BaseModel], where: str, model: type[BaseModel]) -> bool:
    """Whether config class `cls` has `model` at the dotted place `where` (a section, or the item
    models of a section's list key)."""
    section, _, key = where.partition(".")
    field = cls.model_fields.get(section)
    if field is None:
        return False
    if not key:
        return field.annotation is model
    inner = field.annotation.model_fields.get(key) if _is_model(field.annotation) else None
    return inner is not None and model in _list_models(inner.annotation)


def _section(name: str, models: list[Any], done: set, readers, base) -> list[str]:
    """Section `name`: the table of its class (the first of `models`, the classes configs use
    for it), then one table per kind of item of their list keys (the masking stages)."""
    models = [m for m in models if _is_model(m)]
    if not models:
        return []
    first, lines = models[0], []
    if first not in done:
        done.add(first)
        lines += [f"### [{name}]", ""]
        lines += _paragraph(first.__doc__, _read_by(first, name, readers, base))
        lines += _table(first, f"{name}.")
    for model in models:
        for key, field in model.model_fields.items():
            for item in _list_models(field.annotation):
                if item in done:
                    continue
                done.add(item)
                tag = item.model_fields.get("kind")
                title = f'kind = "{tag.default}"' if tag is not None else item.__name__
                lines += [f"#### [{name}.{key}] {title}", ""]
                lines += _paragraph(item.__doc__, _read_by(item, f"{name}.{key}", readers, base))
                lines += _table(item, f"{name}.{key}.N.", skip={"kind"} if tag is not None else set())
    return lines


def _paragraph(doc: str | None, note: str) -> list[str]:
    """The first paragraph of a docstring on one line, and a note; then a blank line."""
    first = " ".join((doc or "").strip().split("\n\n")[0].split())
    text = " ".join(part for part in (first, note) if part)
    return [text, ""] if text else []


def _table(model: type[BaseModel], prefix: str, skip: set[str] = frozenset()) -> list[str]:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, field in model.model_fields.items():
        if key in skip:
            continue
        default = field.get_default(call_default_factory=True)
        shown = "none" if default is None else toml_value(_plain(default))
        cells = [f"`{prefix}{key}`", type_name(field), f"`{shown}`", field.description or ""]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return [*lines, ""]


def type_name(field: FieldInfo) -> str:
    """A field's type in words, with its bounds: `int >= 1`, `float in [0, 1)`, `"a" / "b"`, `str or none`."""
    parts = _union(field.annotation)
    bound = _bounds(field.metadata)
    shown = [_name(p) + (bound if p is not type(None) and _name(p) in ("int", "float") else "") for p in parts]
    if type(None) in parts:  # none last: it reads as "or leave it unset"
        shown = [s for p, s in zip(parts, shown, strict=True) if p is not type(None)] + ["none"]
    return " or ".join(shown)


def _union(annotation: Any) -> list[Any]:
    annotation = _unannotated(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [p for arg in typing.get_args(annotation) for p in _union(arg)]
    return [annotation]


def _unannotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _name(annotation: Any) -> str:
    annotation = _unannotated(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " / ".join(json.dumps(a) for a in args)
    if origin is list:
        items = _union(args[0]) if args else []
        if items and all(_is_model(i) for i in items):
            return "list of tables"
        return "list of " + (" or ".join(_name(i) for i in items) if items else "values")
    if origin is tuple:
        return "[" + ", ".join(_name(a) for a in args) + "]"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(p) for p in _union(annotation))
    if _is_model(annotation):
        return "table"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(metadata: list[Any]) -> str:
    low = high = None
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            low = f"[{_number(m.ge)}"
        elif isinstance(m, annotated_types.Gt):
            low = f"({_number(m.gt)}"
        elif isinstance(m, annotated_types.Le):
            high = f"{_number(m.le)}]"
        elif isinstance(m, annotated_types.Lt):
            high = f"{_number(m.lt)})"
    if low and high:
        return f" in {low}, {high}"
    if low:
        return f" {'>=' if low[0] == '[' else '>'} {low[1:]}"
    if high:
        return f" {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
    return ""


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _list_models(annotation: Any) -> list[type[BaseModel]]:
    """The models a list-valued key holds (the kinds of masking stage), [] for any other key."""
    annotation = _unannotated(annotation)
    if typing.get_origin(annotation) is not list:
        return []
    return [item for item in _union(typing.get_args(annotation)[0]) if _is_model(item)]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _plain(value: Any) -> Any:
    """A default as the JSON-like value a config file writes."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- a config as TOML ---------------------------------------------------------------------------
def config_toml(cfg: BaseModel) -> str:
    """`cfg` as a TOML file that reads back to the same config (None is written "none", as
    config files spell it; a table inside a section is written inline)."""
    lines: list[str] = []
    for section, values in to_dict(cfg).items():
        if not isinstance(values, dict):
            lines.append(f"{section} = {toml_value(values)}")
            continue
        lines += ["", f"[{section}]"]
        for key, value in values.items():
            if isinstance(value, list) and len(value) > 1 and all(isinstance(v, dict) for v in value):
                lines += [f"{key} = [", *(f"  {toml_value(v)}," for v in value), "]"]  # one table a line
            else:
                lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def toml_value(value: Any) -> str:
    """One value in TOML: strings quoted, None as "none", lists and tables inline."""
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        ordered = sorted(value.items(), key=lambda item: item[0] != "kind")  # a masking stage's kind first
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in ordered) + " }"
    raise TypeError(f"no TOML for {value!r}")


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


# -- the run in a few lines ---------------------------------------------------------------------
def config_summary(cfg: TrainingConfig) -> list[str]:
    """What `assay train` is about to do, in a few aligned lines (the device is the caller's: it
    resolves it)."""
    m, d, t = cfg.model, cfg.data, cfg.train
    head = {"language_model": "language model", "token_classifier": "token classifier"}.get(m.mode, "sequence scorer")
    source = f"stream {d.stream}" if d.stream else f"corpus {d.corpus}, {d.tokenizer} tokens"
    start = f"; starts from {m.init_from}" if m.init_from else ""
    schedule = f"lr {t.lr:g} -> {t.min_lr:g}, warmup {t.warmup_iters}"
    extras = [t.dtype] + (["compiled"] if t.compile else []) + ([f"EMA {t.ema_decay:g}"] if t.ema_decay else [])
    extras += ["fsdp under torchrun"] if t.parallel == "fsdp" else []
    return [
        f"objective  {cfg.objective} ({head}, {m.attention} attention)",
        f"model      {m.n_layer} layers x {m.n_head} heads x {m.n_embd} wide, {d.block_size} tokens per block{start}",
        f"data       {source}",
        f"train      {t.max_iters} iterations of {t.batch_size} x {t.grad_accum} sequences, {schedule}, "
        + ", ".join(extras),
        f"evaluate   every {t.eval_interval} iterations on {t.eval_blocks or 'all'} validation blocks",
    ]
