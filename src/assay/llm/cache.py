"""SQLite response cache: one table, keyed by a hash of everything that changes the answer.

The key is sha256 of the canonical JSON of (backend kind, api_base, model, messages, temperature,
max_tokens, top_p, seed, json_schema, schema_name, extra, and the structured-output mode when it is
not the backend's own: caches made before the modes existed stay valid) — and of nothing that does not change the
answer (timeouts, concurrency, rate limits, the API key). Requests with temperature > 0 are cached
too: re-running a pipeline replays its samples. A different `seed`, or a cache-only `extra` key such
as {"_candidate": 2}, gives a fresh sample.

WAL mode, safe from many asyncio tasks and threads, and from several processes on one machine
sharing the file (SQLite's own locking, with a busy timeout). Not on a network file system: WAL needs
shared memory that NFS/SMB do not provide (docs/llm.md, "One cache per node"). Lookups run inline
(a few microseconds); answers are written by a background thread in batches (see ResponseCache).

The cache never fails an LLM call: a batch that cannot be written (the file locked past the busy
timeout, a full disk) is retried with backoff, then dropped (`dropped` counts its answers); the first
failure is logged as one warning (later ones, after a recovery, at info level), and writing resumes
as soon as the file can be written again. A lookup that fails is a miss.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

from assay.errors import ConfigError
from assay.llm.types import ChatRequest, ChatResponse

log = logging.getLogger(__name__)

KEY_VERSION = "assay-llm-cache-1"  # bump when the key's contents change meaning

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    created REAL NOT NULL,
    response TEXT NOT NULL
)
"""

# The structured-output mode `auto` found per endpoint and model (LLMClient): a later run skips the probe.
_MODES_SCHEMA = """
CREATE TABLE IF NOT EXISTS structured_modes (
    endpoint TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def request_key_payload(request: ChatRequest, kind: str, api_base: str | None) -> dict:
    """What the key hashes."""
    return {
        "v": KEY_VERSION,
        "kind": kind,
        "api_base": api_base,
        "model": request.model,
        "messages": request.messages,
        "temperature": float(request.temperature),  # 0 and 0.0 are the same request
        "max_tokens": request.max_tokens,
        "top_p": None if request.top_p is None else float(request.top_p),
        "seed": request.seed,
        "json_schema": request.json_schema,
        "schema_name": request.schema_name if request.json_schema is not None else None,
        "extra": request.extra,
    } | ({"structured": request.structured} if request.structured is not None else {})


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def cache_key(request: ChatRequest, kind: str, api_base: str | None = None) -> str:
    """64 hex characters."""
    return hashlib.sha256(canonical_json(request_key_payload(request, kind, api_base)).encode()).hexdigest()


class ResponseCache:
    """get/put ChatResponses by key; counts hits and misses.

    put() only queues the answer (get() sees it at once); a writer thread with its own connection
    commits the queue in one transaction when `batch` answers are waiting or `flush_s` seconds have
    passed, and on flush()/close() (also at interpreter exit). A commit per answer, on the caller's
    thread, would cost more than the rest of the client together. A hard crash (kill -9, power loss)
    loses at most the answers of the last `flush_s` seconds.

    Failures (see the module docstring): a lock is waited for up to `busy_timeout_s`; a batch is tried
    `write_attempts` times, `retry_wait_s` doubling (at most 2 s) between tries, then dropped.
    """

    def __init__(
        self,
        path: str | Path,
        batch: int = 256,
        flush_s: float = 0.5,
        busy_timeout_s: float = 30.0,
        write_attempts: int = 4,
        retry_wait_s: float = 0.1,
    ):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()  # reads
            self._db.execute(_SCHEMA)
            self._db.execute(_MODES_SCHEMA)
            self._wdb = self._connect()  # writes (the writer thread only)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the LLM cache {self.path}: {exc}") from None
        self.batch = batch
        self.flush_s = flush_s
        self.write_attempts = max(1, write_attempts)
        self.retry_wait_s = retry_wait_s
        self._read_lock = threading.Lock()
        self._cond = threading.Condition()  # guards everything below
        self._pending: dict[str, ChatResponse] = {}
        self._flushes_wanted = self._flushes_done = 0
        self._closing = self._closed = False
        self._writer: threading.Thread | None = None
        self.hits = 0
        self.misses = 0
        self.dropped = 0  # answers not written: their batch failed `write_attempts` times
        self.last_error: str | None = None  # the last write or read failure, if any
        self._failing = {"write": False, "read": False}  # failed last time
        self._warned: set[str] = set()  # "write", "read": the warning was given
        atexit.register(self.close)  # a client that is never closed still writes its last answers

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=self.busy_timeout_s)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across application crashes
        return db

    def get(self, key: str, latency_s: float = 0.0) -> ChatResponse | None:
        """The cached answer (cached=True, cost_usd=0.0, latency_s as given) or None."""
        with self._cond:
            queued = self._pending.get(key)
        if queued is not None:
            data = queued.to_dict()
        else:
            try:
                with self._read_lock:
                    row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
                error = None
            except sqlite3.Error as exc:  # (a miss: the call is made again, never failed)
                row, error = None, exc
            if error is not None or self._failing["read"]:
                self._report("read", error)
            if row is None:
                with self._cond:
                    self.misses += 1
                return None
            data = json.loads(row[0])
        with self._cond:
            self.hits += 1
        data.update(cached=True, cost_usd=0.0, latency_s=latency_s)
        return ChatResponse.from_dict(data)

    def get_mode(self, endpoint: str) -> str | None:
        """The structured-output mode remembered for `endpoint` (kind, api_base and model as one
        string), or None. A failed read is None: the client probes again."""
        try:
            with self._read_lock:
                row = self._db.execute("SELECT mode FROM structured_modes WHERE endpoint = ?", (endpoint,)).fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    def put_mode(self, endpoint: str, mode: str) -> None:
        """Remember `endpoint`'s mode (written at once: it is one row per endpoint and run). A write
        that fails is forgotten: the next run probes again."""
        with contextlib.suppress(sqlite3.Error), self._read_lock:
            self._db.execute(
                "INSERT OR REPLACE INTO structured_modes (endpoint, mode, created) VALUES (?, ?, ?)",
                (endpoint, mode, time.time()),
            )

    def put(self, key: str, response: ChatResponse) -> None:
        """Queue an answer for writing. Never raises for a write that fails later (see `dropped`)."""
        with self._cond:
            self._raise_if_closed()
            self._pending[key] = response
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="llm-cache-writer", daemon=True)
                self._writer.start()
            if len(self._pending) in (1, self.batch):  # the first starts the clock, a full batch goes now
                self._cond.notify_all()

    def flush(self) -> None:
        """Return once every answer put so far is in the file, or dropped after its last attempt."""
        with self._cond:
            self._raise_if_closed()
            if not self._pending:
                return
            self._flushes_wanted += 1
            wanted = self._flushes_wanted
            self._cond.notify_all()
            while self._flushes_done < wanted:
                self._cond.wait()

    def _raise_if_closed(self) -> None:
        if self._closing or self._closed:
            raise RuntimeError(f"the LLM cache {self.path} is closed")

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._closing or self._flushes_wanted > self._flushes_done):
                    self._cond.wait()
                deadline = time.monotonic() + self.flush_s  # the oldest queued answer waits at most this
                while not (
                    self._closing or self._flushes_wanted > self._flushes_done or len(self._pending) >= self.batch
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch = dict(self._pending)
                wanted, closing = self._flushes_wanted, self._closing
            error = self._write_with_retries(batch) if batch else None
            if batch:
                self._report("write", error)  # (before flush() returns: its caller sees the report)
            with self._cond:
                for key, response in batch.items():  # written, or dropped after the last attempt
                    if self._pending.get(key) is response:  # (not replaced meanwhile)
                        del self._pending[key]
                if error is not None:
                    self.dropped += len(batch)
                self._flushes_done = wanted
                self._cond.notify_all()
            if closing:
                return

    def _write_with_retries(self, batch: dict[str, ChatResponse]) -> Exception | None:
        """Write `batch`; None, or the last error after `write_attempts` failed tries. The writer
        thread must survive anything here: if it stopped, nothing would be written again."""
        for attempt in range(self.write_attempts):
            try:
                self._write(batch)
                return None
            except sqlite3.Error as exc:  # busy, full, I/O: may clear
                error = exc
            except Exception as exc:  # anything else will not clear by waiting
                return exc
            if attempt + 1 < self.write_attempts:
                time.sleep(min(2.0, self.retry_wait_s * 2**attempt))
        return error

    def _report(self, what: str, error: Exception | None) -> None:
        """A line when reads or writes start failing and one when they work again: the first failure is
        a warning, later ones (a condition that comes and goes, e.g. a disk near full) are info."""
        with self._cond:
            was_failing = self._failing[what]
            self._failing[what] = error is not None
            first = error is not None and what not in self._warned
            if error is not None:
                self.last_error = f"{type(error).__name__}: {' '.join(str(error).split())}"
                self._warned.add(what)
            dropped = self.dropped
        if error is None and was_failing:
            log.info("the LLM cache %s works again (%d answers were not cached)", self.path, dropped)
        elif error is not None and not was_failing:
            (log.warning if first else log.info)(
                "cannot %s the LLM cache %s (%s); LLM calls go on, uncached, until it works again",
                what,
                self.path,
                self.last_error,
            )

    def _write(self, batch: dict[str, ChatResponse]) -> None:
        now = time.time()
        rows = [
            (key, r.model, now, json.dumps(r.replace(cached=False).to_dict(), ensure_ascii=False))
            for key, r in batch.items()
        ]
        self._wdb.execute("BEGIN IMMEDIATE")
        try:
            self._wdb.executemany(
                "INSERT OR REPLACE INTO responses (key, model, created, response) VALUES (?, ?, ?, ?)", rows
            )
            self._wdb.execute("COMMIT")
        except BaseException:
            if self._wdb.in_transaction:  # (SQLite rolls back by itself on some errors, e.g. a full disk)
                with contextlib.suppress(sqlite3.Error):
                    self._wdb.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        self.flush()
        with self._read_lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        """Write the queued answers and close the file (idempotent). Answers that cannot be written are
        dropped (and reported) like any others: closing never fails a run whose calls succeeded."""
        with self._cond:
            if self._closing or self._closed:
                return
            self._closing = True
            writer = self._writer
            self._cond.notify_all()
        if writer is not None:  # (None: nothing was ever put)
            writer.join()
        with self._cond:
            self._closed = True
        with self._read_lock:
            self._db.close()
        self._wdb.close()
        atexit.unregister(self.close)
