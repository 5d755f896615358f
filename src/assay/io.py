"""Files: atomic writes (a temporary file beside the target, fsync, then rename: a reader never
sees a half-written file, and a crash leaves the old version intact), and the readers of user files
(text, JSONL) that turn every problem into a one-line `DataError`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from assay.errors import DataError


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` to produce the file, then move it onto `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def replace_directory(tmp_dir: str | Path, final_dir: str | Path) -> None:
    """Move a fully written `tmp_dir` onto `final_dir`, replacing it.

    Directories cannot be renamed over non-empty ones, so the old one is first renamed aside
    (`<final>.old`); a crash in between leaves either the old or the new directory loadable.
    """
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    old = final_dir.with_name(final_dir.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final_dir.exists():
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if old.exists():
        shutil.rmtree(old)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_directory(final_dir: str | Path, write: Callable[[Path], None]) -> None:
    """Build a directory atomically: `write(tmp)` fills a temporary directory beside `final_dir`,
    which then replaces it (`replace_directory`); on any failure the temporary one is removed and
    `final_dir` is left as it was."""
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=f".{final_dir.name}."))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); the result is an ordinary folder
        write(tmp)
        replace_directory(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- reading user files -------------------------------------------------------------------------
def read_text_file(path: str | Path) -> str:
    """A user's text file, or a one-line DataError (missing, binary, not UTF-8)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    if b"\0" in data:
        raise DataError(f"{path} is not text (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line of a UTF-8 JSONL file, streamed; a bad
    line is a one-line DataError naming the file and the line. The one JSONL parser of assay."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with path.open(encoding="utf-8") as f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, start=1):  # noqa: B007 (used in the except)
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path} line {lineno} is not valid JSON ({exc.msg})") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} is not UTF-8 text ({exc.reason} near line {lineno + 1})") from None


def jsonl_rows(path: str | Path, field: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for every row of a JSONL file; every row must be a JSON object and, with
    `field`, hold a string under that key (a one-line DataError otherwise)."""
    for lineno, row in iter_jsonl(path):
        if not isinstance(row, dict):
            raise DataError(f"{path} line {lineno}: a row must be a JSON object")
        if field is not None and not isinstance(row.get(field), str):
            raise DataError(f"{path} line {lineno} has no string field {field!r} (found: {', '.join(row)})")
        yield lineno, row


def read_jsonl(path: str | Path, field: str | None = None) -> Iterator[dict[str, Any]]:
    """The rows of a JSONL file, streamed (see `jsonl_rows`)."""
    for _, row in jsonl_rows(path, field):
        yield row
