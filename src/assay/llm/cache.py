"""SQLite response cache: one table, keyed by a hash of everything that changes the answer.

The key is sha256 of the canonical JSON of (backend kind, api_base, model, messages, temperature,
max_tokens, top_p, seed, json_schema, schema_name, extra) — and of nothing that does not change the
answer (timeouts, concurrency, rate limits, the API key). Requests with temperature > 0 are cached
too: re-running a pipeline replays its samples. A different `seed`, or a cache-only `extra` key such
as {"_candidate": 2}, gives a fresh sample.

WAL mode, safe from many asyncio tasks and threads, and from several processes sharing the file
(SQLite's own locking, with a busy timeout). Lookups run inline (a few microseconds); answers are
written by a background thread in batches (see ResponseCache).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from assay.errors import ConfigError, DataError
from assay.llm.types import ChatRequest, ChatResponse

KEY_VERSION = "assay-llm-cache-1"  # bump when the key's contents change meaning

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    created REAL NOT NULL,
    response TEXT NOT NULL
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
    }


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
    """

    def __init__(self, path: str | Path, batch: int = 256, flush_s: float = 0.5):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()  # reads
            self._db.execute(_SCHEMA)
            self._wdb = self._connect()  # writes (the writer thread only)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the LLM cache {self.path}: {exc}") from None
        self.batch = batch
        self.flush_s = flush_s
        self._read_lock = threading.Lock()
        self._cond = threading.Condition()  # guards everything below
        self._pending: dict[str, ChatResponse] = {}
        self._flushes_wanted = self._flushes_done = 0
        self._closing = self._closed = False
        self._error: Exception | None = None
        self._writer: threading.Thread | None = None
        self.hits = 0
        self.misses = 0
        atexit.register(self.close)  # a client that is never closed still writes its last answers

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
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
            with self._read_lock:
                row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
            if row is None:
                with self._cond:
                    self.misses += 1
                return None
            data = json.loads(row[0])
        with self._cond:
            self.hits += 1
        data.update(cached=True, cost_usd=0.0, latency_s=latency_s)
        return ChatResponse.from_dict(data)

    def put(self, key: str, response: ChatResponse) -> None:
        with self._cond:
            self._raise_if_broken()
            self._pending[key] = response
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="llm-cache-writer", daemon=True)
                self._writer.start()
            if len(self._pending) in (1, self.batch):  # the first starts the clock, a full batch goes now
                self._cond.notify_all()

    def flush(self) -> None:
        """Return once every answer put so far is in the file."""
        with self._cond:
            self._raise_if_broken()
            if not self._pending:
                return
            self._flushes_wanted += 1
            wanted = self._flushes_wanted
            self._cond.notify_all()
            while self._flushes_done < wanted and self._error is None:
                self._cond.wait()
            self._raise_if_broken()

    def _raise_if_broken(self) -> None:
        if self._closing or self._closed:
            raise RuntimeError(f"the LLM cache {self.path} is closed")
        if self._error is not None:
            raise DataError(f"cannot write the LLM cache {self.path}: {self._error}")

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
            try:
                if batch:
                    self._write(batch)
                error = None
            except sqlite3.Error as exc:
                error = exc
            with self._cond:
                self._error = error
                if error is None:
                    for key, response in batch.items():
                        if self._pending.get(key) is response:  # (not replaced meanwhile)
                            del self._pending[key]
                    self._flushes_done = wanted
                self._cond.notify_all()
                if closing or error is not None:
                    return

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
            self._wdb.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        self.flush()
        with self._read_lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        """Write the queued answers and close the file (idempotent). Raises DataError if they could not
        be written."""
        with self._cond:
            if self._closing or self._closed:
                return
            self._closing = True
            writer = self._writer
            self._cond.notify_all()
        if writer is not None:
            writer.join()
        elif self._pending:  # (cannot happen: put() starts the writer)
            self._write(dict(self._pending))
        with self._cond:
            self._closed = True
            error = self._error
        with self._read_lock:
            self._db.close()
        self._wdb.close()
        atexit.unregister(self.close)
        if error is not None:
            raise DataError(f"cannot write the LLM cache {self.path}: {error}")
