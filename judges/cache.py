"""The judge cache: one SQLite file, content-addressed, shared safely by several processes.

A record's key is ``prompt.cache_key``: a hash of the judge's identity (model, sampling, template text,
prompt version, parser, response format, truncation) and of the template fields as the judge saw them.
Only parsed judgements are stored as results, so a failed judgement is asked again on the next run;
failures go to a separate log table for diagnosis. Nothing about the endpoint or its key is stored.

WAL mode lets readers proceed while one writer commits; ``busy_timeout`` makes concurrent writers wait
instead of failing; writes are short transactions (one per write, or the few writes of the items that
finished at the same moment: ``transaction()``) so a killed run keeps what it finished.

Leases keep two processes from paying for the same judgement at once: before a call the engine claims the
item's key (``claim``); another process that finds a live lease waits for the answer instead of asking
too. A lease names its owner (host, pid, a random token) and expires unless renewed, and a lease whose
owner process on this host is gone counts as expired at once, so a killed run never blocks the next one.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
_LOOKUP_CHUNK = 500  # SQLite's default limit on bound parameters is far above this

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS judgements (
    key TEXT PRIMARY KEY,
    judge_identity TEXT NOT NULL,
    judge_name TEXT NOT NULL,
    judge_model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    raw TEXT NOT NULL,
    scores TEXT NOT NULL,
    reasons TEXT,
    overall REAL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_s REAL NOT NULL,
    attempts INTEGER NOT NULL,
    truncated TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    judge_model TEXT NOT NULL,
    error_kind TEXT NOT NULL,
    error TEXT,
    raw TEXT,
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_key ON failures (key);
CREATE TABLE IF NOT EXISTS leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS leases_owner ON leases (owner);
"""
_HOST = socket.gethostname()


def new_lease_owner() -> str:
    """A lease owner id: this host and process, and a token unique to the judging run."""
    return f"{_HOST}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


def owner_alive(owner: str) -> bool:
    """False only when the owner ran on this host and its process is gone (or a zombie); an owner on
    another host is presumed alive until its lease expires."""
    host, _, rest = owner.partition("/")
    pid_text = rest.split("/", 1)[0]
    if host != _HOST or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent still answers kill(pid, 0)
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


class JudgeCacheError(RuntimeError):
    """The cache file cannot be opened or was written by an incompatible version."""


@dataclass(frozen=True)
class CachedJudgement:
    key: str
    judge_identity: str
    judge_name: str
    judge_model: str
    prompt_version: str
    raw: str
    scores: list[float]
    reasons: list[str] | None
    overall: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    attempts: int
    truncated: dict[str, int]
    created_at: float


_COLUMNS = (
    "key, judge_identity, judge_name, judge_model, prompt_version, raw, scores, reasons, overall, "
    "prompt_tokens, completion_tokens, cost_usd, latency_s, attempts, truncated, created_at"
)


def _row_to_record(row: tuple[Any, ...]) -> CachedJudgement:
    (
        key,
        identity,
        name,
        model,
        version,
        raw,
        scores,
        reasons,
        overall,
        pt,
        ct,
        cost,
        lat,
        att,
        trunc,
        at,
    ) = row
    return CachedJudgement(
        key=key,
        judge_identity=identity,
        judge_name=name,
        judge_model=model,
        prompt_version=version,
        raw=raw,
        scores=[float(s) for s in json.loads(scores)],
        reasons=json.loads(reasons) if reasons is not None else None,
        overall=overall,
        prompt_tokens=pt,
        completion_tokens=ct,
        cost_usd=cost,
        latency_s=lat,
        attempts=att,
        truncated=json.loads(trunc),
        created_at=at,
    )


class JudgeCache:
    """A judge cache file. Usable from several threads of one process (a lock serialises the connection)
    and from several processes at once (SQLite's own locking)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: autocommit; the explicit BEGIN IMMEDIATE below keeps writes short.
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JudgeCacheError(f"judge cache {self.path}: could not switch to WAL mode (got {mode})")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            with self._write():
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    self._conn.execute(statement)
                found = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if found is None:
                    self._conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                    )
                elif found[0] != str(SCHEMA_VERSION):
                    raise JudgeCacheError(
                        f"judge cache {self.path}: schema version {found[0]}, this version reads {SCHEMA_VERSION}; "
                        "point IOPO_EVAL_JUDGE_CACHE at a new file"
                    )
        except sqlite3.DatabaseError as exc:
            raise JudgeCacheError(f"judge cache {self.path}: cannot open: {exc}") from exc

    # --- transactions ------------------------------------------------------------------------------
    class _Tx:
        def __init__(self, cache: JudgeCache) -> None:
            self.cache = cache

        def __enter__(self) -> None:
            self.cache._lock.acquire()
            try:
                self.cache._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.cache._lock.release()
                raise

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            try:
                self.cache._conn.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.cache._lock.release()

    def _write(self) -> JudgeCache._Tx:
        return JudgeCache._Tx(self)

    # --- reads ---------------------------------------------------------------------------------------
    def get(self, key: str) -> CachedJudgement | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedJudgement]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, CachedJudgement] = {}
        with self._lock:
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                chunk = wanted[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(f"SELECT {_COLUMNS} FROM judgements WHERE key IN ({marks})", chunk)
                for row in rows.fetchall():
                    record = _row_to_record(row)
                    found[record.key] = record
        return found

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0])

    def failures(self, key: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT key, judge_model, error_kind, error, raw, attempts, created_at FROM failures"
        params: tuple[Any, ...] = ()
        if key is not None:
            query, params = query + " WHERE key = ?", (key,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", params).fetchall()
        names = ("key", "judge_model", "error_kind", "error", "raw", "attempts", "created_at")
        return [dict(zip(names, row, strict=True)) for row in rows]

    # --- writes --------------------------------------------------------------------------------------
    def transaction(self) -> CacheTransaction:
        """Several writes in one transaction: ``with cache.transaction() as tx: tx.put(...); tx.claim(...)``
        (the engine commits the writes of items that finish at the same moment together)."""
        return CacheTransaction(self)

    def put(self, record: CachedJudgement) -> None:
        """Store a parsed judgement. An existing record for the key is kept (first writer wins): two
        processes judging the same item at once both paid, but the cache holds one answer."""
        with self.transaction() as tx:
            tx.put(record)

    def log_failure(
        self, key: str, judge_model: str, error_kind: str, error: str | None, raw: str | None, attempts: int
    ) -> None:
        with self.transaction() as tx:
            tx.log_failure(key, judge_model, error_kind, error, raw, attempts)

    # --- leases --------------------------------------------------------------------------------------
    def claim(self, key: str, owner: str, ttl_s: float) -> tuple[str, CachedJudgement | None]:
        """Take the lease on ``key`` before paying for it. Returns ``("done", record)`` when the judgement
        is already stored, ``("busy", None)`` while another live owner holds an unexpired lease, else
        ``("claimed", None)``: the caller may call the judge and must ``put`` or ``release`` after."""
        with self.transaction() as tx:
            return tx.claim(key, owner, ttl_s)

    def held_elsewhere(self, keys: Iterable[str], owner: str) -> set[str]:
        """The keys among ``keys`` on which another live owner holds an unexpired lease."""
        wanted = list(dict.fromkeys(keys))
        now = time.time()
        held: set[str] = set()
        with self._lock:
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                chunk = wanted[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, owner FROM leases WHERE expires_at > ? AND owner != ? AND key IN ({marks})",
                    (now, owner, *chunk),
                ).fetchall()
                held.update(key for key, who in rows if owner_alive(who))
        return held

    def renew(self, owner: str, ttl_s: float) -> None:
        """Push back the expiry of every lease ``owner`` holds (its calls are still running)."""
        with self._write():
            self._conn.execute(
                "UPDATE leases SET expires_at = ? WHERE owner = ?", (time.time() + ttl_s, owner)
            )

    def release(self, key: str | None, owner: str) -> None:
        """Give up ``owner``'s lease on ``key`` (on every key it holds when ``key`` is None)."""
        with self.transaction() as tx:
            tx.release(key, owner)

    def leases(self) -> list[tuple[str, str, float]]:
        """(key, owner, expires_at) of every lease, for diagnosis and tests."""
        with self._lock:
            return [
                tuple(r) for r in self._conn.execute("SELECT key, owner, expires_at FROM leases").fetchall()
            ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> JudgeCache:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class CacheTransaction:
    """The writes of :class:`JudgeCache`, inside one ``BEGIN IMMEDIATE`` ... ``COMMIT``."""

    def __init__(self, cache: JudgeCache) -> None:
        self._cache = cache
        self._conn = cache._conn
        self._tx = cache._write()

    def __enter__(self) -> CacheTransaction:
        self._tx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._tx.__exit__(*exc)

    def put(self, record: CachedJudgement) -> None:
        values = (
            record.key,
            record.judge_identity,
            record.judge_name,
            record.judge_model,
            record.prompt_version,
            record.raw,
            json.dumps(record.scores),
            json.dumps(record.reasons, ensure_ascii=False) if record.reasons is not None else None,
            record.overall,
            record.prompt_tokens,
            record.completion_tokens,
            record.cost_usd,
            record.latency_s,
            record.attempts,
            json.dumps(record.truncated, sort_keys=True),
            record.created_at or time.time(),
        )
        self._conn.execute(
            f"INSERT OR IGNORE INTO judgements ({_COLUMNS}) VALUES ({','.join('?' * len(values))})", values
        )
        self._conn.execute("DELETE FROM leases WHERE key = ?", (record.key,))

    def log_failure(
        self, key: str, judge_model: str, error_kind: str, error: str | None, raw: str | None, attempts: int
    ) -> None:
        self._conn.execute(
            "INSERT INTO failures (key, judge_model, error_kind, error, raw, attempts, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, judge_model, error_kind, error, raw, attempts, time.time()),
        )

    def claim(self, key: str, owner: str, ttl_s: float) -> tuple[str, CachedJudgement | None]:
        now = time.time()
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM judgements WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return "done", _row_to_record(row)
        held = self._conn.execute("SELECT owner, expires_at FROM leases WHERE key = ?", (key,)).fetchone()
        if held is not None and held[0] != owner and held[1] > now and owner_alive(held[0]):
            return "busy", None
        self._conn.execute(
            "INSERT OR REPLACE INTO leases (key, owner, expires_at) VALUES (?, ?, ?)",
            (key, owner, now + ttl_s),
        )
        return "claimed", None

    def release(self, key: str | None, owner: str) -> None:
        if key is None:
            self._conn.execute("DELETE FROM leases WHERE owner = ?", (owner,))
        else:
            self._conn.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))
