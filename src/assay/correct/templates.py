"""The reprompt template library: `{id, style, text}` records loaded from TOML and validated.

A template's text is a follow-up message for the model; it may use only the placeholders
`{question}` and `{previous_answer}` (literal braces are written `{{` and `}}`). The shipped library
is `templates.toml` beside this module; `load_templates(path)` reads any file of the same shape.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from assay.errors import ConfigError

STYLES: tuple[str, ...] = (
    "neutral",
    "critical",
    "step_by_step",
    "evidence_seeking",
    "confidence_probing",
    "devil_advocate",
    "concise_recheck",
    "decompose",
    "verify_units",
)
PLACEHOLDERS: frozenset[str] = frozenset({"question", "previous_answer"})
# "stop" is the policy's no-reprompt arm, so no template may take its name.
RESERVED_IDS: frozenset[str] = frozenset({"stop"})
_ID = re.compile(r"[a-z][a-z0-9_]*")
_KEYS = frozenset({"id", "style", "text"})


@dataclass(frozen=True)
class Template:
    id: str
    style: str
    text: str

    def render(self, question: str, previous_answer: str) -> str:
        """The message to send: the text with its placeholders filled in."""
        return self.text.format(question=question, previous_answer=previous_answer)


def _placeholders(text: str, where: str) -> set[str]:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{where}: malformed braces in text ({exc}); write literal braces as {{{{ and }}}}") from None
    return fields


def _parse(entry: object, index: int, source: str) -> Template:
    where = f"{source}: template #{index + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table with id, style and text")
    missing = sorted(_KEYS - entry.keys())
    unknown = sorted(entry.keys() - _KEYS)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: id, style, text)")
    tid, style, text = entry["id"], entry["style"], entry["text"]
    if not isinstance(tid, str) or not _ID.fullmatch(tid):
        raise ConfigError(f"{where}: id {tid!r} must be lower-case letters, digits and underscores, starting a-z")
    where = f"{source}: template {tid!r}"
    if tid in RESERVED_IDS:
        raise ConfigError(f"{where}: the id 'stop' is reserved for the no-reprompt arm")
    if style not in STYLES:
        raise ConfigError(f"{where}: unknown style {style!r} (allowed: {', '.join(STYLES)})")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: text is empty")
    bad = sorted(_placeholders(text, where) - PLACEHOLDERS)
    if bad:
        raise ConfigError(
            f"{where}: unknown placeholder(s) {', '.join('{' + b + '}' for b in bad)} "
            "(allowed: {question}, {previous_answer})"
        )
    return Template(id=tid, style=style, text=text)


def parse_templates(text: str, source: str = "<string>") -> list[Template]:
    """Templates from TOML text holding `[[template]]` tables; raises ConfigError on any problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    extra = sorted(doc.keys() - {"template"})
    if extra:
        raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(extra)} (expected [[template]] tables)")
    entries = doc.get("template", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: no [[template]] tables found")
    templates: list[Template] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        t = _parse(entry, i, source)
        if t.id in seen:
            raise ConfigError(f"{source}: duplicate template id {t.id!r}")
        seen.add(t.id)
        templates.append(t)
    return templates


def load_templates(path: str | Path | None = None) -> list[Template]:
    """The templates in `path`, or the shipped library when `path` is None, in file order."""
    if path is None:
        res = resources.files("assay.correct").joinpath("templates.toml")
        return parse_templates(res.read_text(encoding="utf-8"), source="templates.toml (shipped)")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read template file {path}: {exc.strerror or exc}") from None
    return parse_templates(text, source=str(path))


def templates_by_id(templates: list[Template]) -> dict[str, Template]:
    return {t.id: t for t in templates}
