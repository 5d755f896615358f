"""Logical connectives: the inventory (connectives.toml), a finder on text, and per-token
annotations aligned with a token stream.

The finder matches the inventory's forms with word boundaries, in any case, on the *text* (so
"For", "for," and "THEREFORE" are found whatever the tokenizer does with them); the character
span of each occurrence is then mapped to the tokens that overlap it, and those tokens are
masked together (whole-word masking). `coverage` reports, per form, how many occurrences the
regex found and how many map to tokens that cover exactly that word: the two must be equal.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from assay.errors import DataError
from assay.io import CONFIG_MAX, check_size, read_text_file

LINE_INITIAL, CLAUSE_INITIAL = 1, 2  # Annotations.flags bits
CLAUSE_PUNCTUATION = set(",;:.?!")


@dataclass(frozen=True)
class Inventory:
    forms: tuple[str, ...]  # lower case, in file order; a form's id is its index
    classes: tuple[str, ...]
    class_of: tuple[int, ...]  # class id of each form

    @cached_property
    def pattern(self) -> re.Pattern:
        # longest forms first, so "so that" wins over "so"; spaces inside a form match any whitespace
        alternatives = sorted(self.forms, key=len, reverse=True)
        body = "|".join(r"\s+".join(map(re.escape, f.split())) for f in alternatives)
        return re.compile(rf"\b(?:{body})\b", re.IGNORECASE)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {f: i for i, f in enumerate(self.forms)}

    def form_id(self, matched: str) -> int:
        return self._index[" ".join(matched.lower().split())]

    def find(self, text: str) -> list[tuple[int, int, int]]:
        """(start, end, form id) of every occurrence, in text order."""
        return [(m.start(), m.end(), self.form_id(m.group())) for m in self.pattern.finditer(text)]

    def fingerprint(self) -> str:
        return hashlib.sha256(repr((self.forms, self.classes, self.class_of)).encode()).hexdigest()[:16]


def load_inventory(path: str | Path | None = None) -> Inventory:
    """The shipped inventory (assay/data/connectives.toml) or a user's file of the same shape."""
    try:
        if path is None:
            raw = (importlib.resources.files("assay.experiments.connectives") / "connectives.toml").read_text(
                encoding="utf-8"
            )
        else:
            if not Path(path).is_file():
                raise DataError(f"connective inventory not found: {path}")
            raw = read_text_file(check_size(path, CONFIG_MAX, "a connective inventory"))
        classes = tomllib.loads(raw)["classes"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise DataError(f"connective inventory {path or 'connectives.toml'} is malformed ({exc})") from None
    forms, class_of = [], []
    for c, (_, words) in enumerate(classes.items()):
        for word in words:
            form = " ".join(str(word).lower().split())
            if form in forms:
                raise DataError(f"connective {form!r} is listed in two classes")
            forms.append(form)
            class_of.append(c)
    return Inventory(tuple(forms), tuple(classes), tuple(class_of))


@dataclass
class Annotations:
    """Per-token arrays aligned with a token stream, and the finder's coverage counts."""

    occ: np.ndarray  # (N,) int32: index of the connective occurrence the token belongs to, or -1
    form: np.ndarray  # (N,) int16: form id of that occurrence, or -1
    flags: np.ndarray  # (N,) uint8: LINE_INITIAL | CLAUSE_INITIAL of the token's occurrence
    line: np.ndarray  # (N,) int32: the line (in the KJV: the verse) each token starts in
    found: np.ndarray  # (F,) occurrences of each form found by the regex
    covered: np.ndarray  # (F,) of those, occurrences whose tokens cover exactly the word

    def save(self, path: Path) -> None:
        from assay.io import atomic_write

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **self.__dict__)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> Annotations:
        with np.load(path) as z:
            return cls(**{k: z[k] for k in z.files})


def annotate(text: str, tokenizer, inventory: Inventory) -> tuple[np.ndarray, Annotations]:
    """Token ids of `text` (exactly `tokenizer.encode_array(text)`) and their annotations."""
    ids, _, _, ann = annotate_with_offsets(text, tokenizer, inventory)
    return ids, ann


def annotate_with_offsets(text: str, tokenizer, inventory: Inventory):
    """(ids, (N, 2) character offsets of the tokens, the finder's (start, end, form) spans -- an
    annotation's occurrence id indexes them -- and the annotations)."""
    ids, offsets = tokenizer.encode_array_with_offsets(text)
    starts, ends = offsets[:, 0], offsets[:, 1]
    n = len(ids)
    occ = np.full(n, -1, dtype=np.int32)
    form = np.full(n, -1, dtype=np.int16)
    flags = np.zeros(n, dtype=np.uint8)
    found = np.zeros(len(inventory.forms), dtype=np.int64)
    covered = np.zeros_like(found)
    newlines = np.flatnonzero(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32) == ord("\n"))
    line = np.searchsorted(newlines, starts, side="right").astype(np.int32)
    spans = inventory.find(text)
    for k, (s, e, f) in enumerate(spans):
        found[f] += 1
        lo = int(np.searchsorted(ends, s, side="right"))  # first token ending after s
        hi = int(np.searchsorted(starts, e, side="left"))  # first token starting at or after e
        if hi <= lo or (occ[lo:hi] >= 0).any():
            continue
        span_start = int(starts[lo])
        while span_start < s and text[span_start].isspace():  # a byte-level token carries its space
            span_start += 1
        if span_start != s or int(ends[hi - 1]) != e:
            continue  # a token reaches outside the word: it cannot be masked as a whole word
        covered[f] += 1
        occ[lo:hi], form[lo:hi] = k, f
        j = s - 1
        while j >= 0 and text[j] in " \t":
            j -= 1
        previous = text[j] if j >= 0 else "\n"
        if previous == "\n":
            flags[lo:hi] = LINE_INITIAL
        elif previous in CLAUSE_PUNCTUATION:
            flags[lo:hi] = CLAUSE_INITIAL
    return ids, offsets, spans, Annotations(occ, form, flags, line, found, covered)


def coverage(inventory: Inventory, annotations: Annotations) -> list[dict]:
    """Per form: class, occurrences found by the regex, occurrences masked as whole words."""
    return [
        {
            "connective": f,
            "class": inventory.classes[inventory.class_of[i]],
            "found": int(annotations.found[i]),
            "masked": int(annotations.covered[i]),
        }
        for i, f in enumerate(inventory.forms)
    ]
