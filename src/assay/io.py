"""Files: atomic writes (a temporary file beside the target, fsync, then rename: a reader never
sees a half-written file, and a crash leaves the old version intact), directory swaps that survive
a kill at any step, a per-folder writer lock, size limits for files read whole, and the readers of
user files (text, JSONL) that turn every problem into a one-line `DataError`.

Durability: every file is fsynced before it is renamed into place, and the folder holding it after
the rename, so a power cut never leaves a name pointing at unwritten data. Results are written with
the usual permissions (0666 less the umask), never the private 0600 of `mkstemp`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assay.errors import AssayError, DataError

DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def fsync_path(path: str | Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seal_tree(root: str | Path) -> None:
    """Give every file and folder under `root` (and `root`) the usual permissions (some writers,
    like safetensors, make private 0600 files) and fsync them, deepest first."""
    mask = umask()
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            os.chmod(path, 0o666 & ~mask)
            fsync_path(path)
        os.chmod(folder, 0o777 & ~mask)
        fsync_path(folder)


def umask() -> int:
    """The process's umask, read without changing it (`os.umask` sets it: not safe beside threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` to produce the file, then move it onto `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600), and some writers (safetensors) write private files
        # too: a result is an ordinary file
        os.chmod(tmp, 0o666 & ~umask())
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def replace_directory(tmp_dir: str | Path, final_dir: str | Path) -> None:
    """Move a fully written `tmp_dir` onto `final_dir`, replacing it; safe against a kill at any step.

    Directories cannot be renamed over non-empty ones, so the old one is first renamed aside
    (`<final>.old`), the new one renamed into place, then the old one removed. A kill between the
    two renames leaves only `<final>.old`: readers fall back to it (`checkpoint_io.resolve_checkpoint`),
    and the next swap keeps it until the new directory is in place, so there is always one intact copy.
    """
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    old = final_dir.with_name(final_dir.name + ".old")
    seal_tree(tmp_dir)
    if final_dir.exists():
        if old.exists():
            shutil.rmtree(old)  # a leftover of an earlier swap; `final_dir` is the intact copy
        os.replace(final_dir, old)
    # else: `old`, if there is one, is the only intact copy (a swap was killed between its renames)
    os.replace(tmp_dir, final_dir)
    fsync_path(final_dir.parent)
    if old.exists():
        shutil.rmtree(old)


def write_directory(final_dir: str | Path, write: Callable[[Path], None]) -> None:
    """Build a directory atomically: `write(tmp)` fills a temporary directory beside `final_dir`,
    which then replaces it (`replace_directory`); on any failure the temporary one is removed and
    `final_dir` is left as it was."""
    final_dir = Path(final_dir)
    tmp = make_temp_directory(final_dir)
    try:
        write(tmp)
        replace_directory(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def make_temp_directory(final_dir: str | Path) -> Path:
    """A fresh, uniquely named folder beside `final_dir` to build its next version in (two writers
    never share one); named `.<final>.*.tmp` so `remove_temp_directories` finds leftovers of a kill."""
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=f".{final_dir.name}.", suffix=".tmp"))
    return tmp  # private (0700) while it is written; `replace_directory` gives it the usual permissions


def remove_temp_directories(final_dir: str | Path) -> None:
    """Remove what killed writers of `final_dir` left behind (call it holding the folder's lock)."""
    final_dir = Path(final_dir)
    for leftover in final_dir.parent.glob(f".{final_dir.name}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def remove_entries(folder: str | Path, names: Iterable[str]) -> None:
    """Delete the files and folders `names` of `folder` that exist (a symlink itself, never what it
    points to): what `--overwrite` removes of a run before starting afresh."""
    for path in (Path(folder) / name for name in names):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def is_disk_full(exc: BaseException) -> bool:
    """An OSError (or a safetensors error wrapping one) that says the disk or the file size limit is full."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return True
    text = str(exc)
    return any(s in text for s in ("No space left", "File too large", "FileTooLarge", "StorageFull", "Disk quota"))


@contextmanager
def folder_lock(folder: str | Path, what: str = "run") -> Iterator[None]:
    """Hold an exclusive lock on `folder` (a `.lock` file in it) while writing there; a second
    writer gets a one-line AssayError at once. The OS releases the lock when the process dies, so
    a killed writer never leaves a stale lock behind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise AssayError(f"{folder} is in use: another process (pid {owner}) is writing this {what}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# -- size limits and full disks ------------------------------------------------------------
# A command that reads a file into memory checks its size first, so a multi-GB file given by mistake
# is refused at once with a one-line error instead of filling the memory; the limits are far above
# what the files hold in normal use. `writing(path)` turns a full disk into one DataError naming it.
MiB = 1 << 20
GiB = 1 << 30

CONFIG_MAX = 1 * MiB  # a TOML config file
JSON_MAX = 64 * MiB  # one JSON document read whole (a music config, a run's eval.json)
TEXT_MAX = 64 * MiB  # one text read whole (a text to score, a source text)
JSONL_MAX = 1 * GiB  # a JSONL input: parsed row by row, but its rows are kept in memory


def human(size: int) -> str:
    """A byte count for people: 512 bytes, 3.2 MiB, 4.0 GiB."""
    if size < 1024:
        return f"{size} bytes"
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"  # pragma: no cover


def check_size(path: str | Path, limit: int, what: str = "a file") -> Path:
    """`path` if it is a file of at most `limit` bytes; else a one-line DataError (missing, a
    folder, too large). `what` names the file's role in the message, e.g. "a text to score"."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file")
    if size > limit:
        raise DataError(f"{path} is too large ({human(size)}): {what} may be at most {human(limit)}")
    return path


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn a full disk while writing `path` (an OSError, or a safetensors error wrapping one) into
    one DataError naming it; other errors pass."""
    try:
        yield
    except Exception as exc:
        if is_disk_full(exc):
            raise DataError(f"disk full or file too large: {path}") from None
        raise


# -- reading user files -------------------------------------------------------------------------
TEXT_FILE_MAX = 1 * GiB  # a text file read whole (a corpus file)
MAX_JSONL_LINE_CHARS = 64 << 20  # one JSONL row: 64 Mi characters


def read_text_file(path: str | Path, max_bytes: int = TEXT_FILE_MAX, what: str = "a text file") -> str:
    """A user's text file, or a one-line DataError (missing, a folder, larger than `max_bytes`,
    binary, not UTF-8). The size is checked before anything is read."""
    path = check_size(path, max_bytes, what)
    data = path.read_bytes()
    if b"\0" in data:
        raise DataError(f"{path} is not text (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line of a UTF-8 JSONL file, streamed; a bad
    line (not JSON, or longer than MAX_JSONL_LINE_CHARS: a file with no line breaks is never read
    whole) is a one-line DataError naming the file and the line. The one JSONL parser of assay."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with path.open(encoding="utf-8") as f:
        lineno = 0
        try:
            while line := f.readline(MAX_JSONL_LINE_CHARS + 1):
                lineno += 1
                if len(line) > MAX_JSONL_LINE_CHARS:
                    raise DataError(f"{path} line {lineno} is longer than {MAX_JSONL_LINE_CHARS >> 20} Mi characters")
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
