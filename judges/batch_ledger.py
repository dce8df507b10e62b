"""Which batches are out, and which cache keys each holds: two tables in the judge cache's SQLite file.

A batch costs money once it is submitted, so its id and its keys must outlive the process that submitted
it. The ledger records a submission *before* the upload (state ``preparing``, with its keys), then the
input file id and the batch id as soon as they are known (state ``submitted``), and closes it once its
results are in the cache (``done``) or it is known never to have been created (``abandoned``). A run that
starts later finds the open submissions holding its keys and re-attaches instead of submitting them again.
A submission still ``preparing`` whose owner died may or may not have become a batch: the batch carries the
submission id in its metadata, so the runner looks it up before deciding (``batch.py``).

The tables live beside ``judgements`` in the same file (WAL, busy timeout, one short transaction per
write), opened through a connection of their own so that the cache's schema is untouched; an older
version of iopo-eval ignores them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iopo_eval.judges.cache import BUSY_TIMEOUT_MS, JudgeCacheError

OPEN_STATES = ("preparing", "submitted")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_jobs (
    submission TEXT PRIMARY KEY,
    judge_identity TEXT NOT NULL,
    judge_name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    owner TEXT NOT NULL,
    round INTEGER NOT NULL,
    state TEXT NOT NULL,
    input_file_id TEXT,
    batch_id TEXT,
    remote_status TEXT,
    n_requests INTEGER NOT NULL,
    n_bytes INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batch_jobs_open ON batch_jobs (state, judge_identity, endpoint);
CREATE TABLE IF NOT EXISTS batch_items (
    submission TEXT NOT NULL,
    key TEXT NOT NULL,
    n_expected INTEGER NOT NULL,
    truncated TEXT NOT NULL,
    PRIMARY KEY (submission, key)
);
CREATE INDEX IF NOT EXISTS batch_items_key ON batch_items (key);
"""
_JOB_COLUMNS = (
    "submission, judge_identity, judge_name, endpoint, owner, round, state, input_file_id, batch_id, "
    "remote_status, n_requests, n_bytes, created_at, updated_at"
)


@dataclass(frozen=True)
class HeldKey:
    """A cache key in a submission, with what it takes to parse and store its answer in any later run."""

    key: str
    n_expected: int
    truncated: dict[str, int]


@dataclass(frozen=True)
class BatchJob:
    submission: str  # our id for it, also sent as the batch's metadata
    judge_identity: str
    judge_name: str
    endpoint: str  # the API base URL the batch lives at (never a key)
    owner: str  # the lease owner (host/pid/token) of the run that submitted it
    round: int  # 1 for a first submission, 2 for its first follow-up ...
    state: str  # preparing | submitted | done | abandoned
    input_file_id: str | None
    batch_id: str | None
    remote_status: str | None  # the batch's last status seen (validating ... completed)
    n_requests: int
    n_bytes: int
    created_at: float
    updated_at: float


class BatchLedger:
    """The batch tables of a judge cache file. Thread-safe; several processes may share the file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            with self._write():
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    self._conn.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise JudgeCacheError(f"judge cache {self.path}: cannot open the batch tables: {exc}") from exc

    class _Tx:
        def __init__(self, ledger: BatchLedger) -> None:
            self.ledger = ledger

        def __enter__(self) -> sqlite3.Connection:
            self.ledger._lock.acquire()
            try:
                self.ledger._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.ledger._lock.release()
                raise
            return self.ledger._conn

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            try:
                self.ledger._conn.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.ledger._lock.release()

    def _write(self) -> BatchLedger._Tx:
        return BatchLedger._Tx(self)

    # --- writes --------------------------------------------------------------------------------------
    def begin(
        self,
        submission: str,
        *,
        judge_identity: str,
        judge_name: str,
        endpoint: str,
        owner: str,
        round: int,
        keys: Iterable[HeldKey],
        n_bytes: int,
    ) -> list[str]:
        """Record a submission before anything is uploaded. Keys that an open submission of the same judge
        at the same endpoint already holds are left out (another run has them in a batch); the keys taken
        are returned, in order. Nothing is recorded when none is left."""
        wanted = {k.key: k for k in keys}
        now = time.time()
        with self._write() as conn:
            held = _held(conn, judge_identity, endpoint)
            taken = [k for k in wanted if k not in held]
            if taken:
                conn.execute(
                    f"INSERT INTO batch_jobs ({_JOB_COLUMNS}) VALUES ({','.join('?' * 14)})",
                    (
                        submission,
                        judge_identity,
                        judge_name,
                        endpoint,
                        owner,
                        round,
                        "preparing",
                        None,
                        None,
                        None,
                        len(taken),
                        n_bytes,
                        now,
                        now,
                    ),
                )
                conn.executemany(
                    "INSERT INTO batch_items (submission, key, n_expected, truncated) VALUES (?, ?, ?, ?)",
                    [
                        (submission, k, wanted[k].n_expected, json.dumps(wanted[k].truncated, sort_keys=True))
                        for k in taken
                    ],
                )
        return taken

    def _update(self, submission: str, **values: Any) -> None:
        names = ", ".join(f"{k} = ?" for k in values)
        with self._write() as conn:
            conn.execute(
                f"UPDATE batch_jobs SET {names}, updated_at = ? WHERE submission = ?",
                (*values.values(), time.time(), submission),
            )

    def set_input_file(self, submission: str, file_id: str) -> None:
        self._update(submission, input_file_id=file_id)

    def set_batch(self, submission: str, batch_id: str, status: str) -> None:
        """The batch exists: from now on its keys are never submitted again while it is open."""
        self._update(submission, batch_id=batch_id, remote_status=status, state="submitted")

    def set_remote_status(self, submission: str, status: str) -> None:
        self._update(submission, remote_status=status)

    def close_job(self, submission: str, state: str) -> None:
        """``done``: its results are in the cache; ``abandoned``: it never became a batch."""
        if state not in ("done", "abandoned"):
            raise ValueError(f"a submission closes as done or abandoned, not {state!r}")
        self._update(submission, state=state)

    # --- reads ---------------------------------------------------------------------------------------
    def job(self, submission: str) -> BatchJob | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM batch_jobs WHERE submission = ?", (submission,)
            ).fetchone()
        return BatchJob(*row) if row is not None else None

    def jobs(self) -> list[BatchJob]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM batch_jobs ORDER BY created_at").fetchall()
        return [BatchJob(*row) for row in rows]

    def keys(self, submission: str) -> list[HeldKey]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, n_expected, truncated FROM batch_items WHERE submission = ? ORDER BY rowid",
                (submission,),
            ).fetchall()
        return [HeldKey(key, n, json.loads(truncated)) for key, n, truncated in rows]

    def open_jobs(
        self, judge_identity: str, endpoint: str, keys: Iterable[str] | None = None
    ) -> list[BatchJob]:
        """Open submissions of this judge at this endpoint, oldest first; with ``keys``, only those
        holding at least one of them."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM batch_jobs WHERE state IN (?, ?) AND judge_identity = ? "
                "AND endpoint = ? ORDER BY created_at",
                (*OPEN_STATES, judge_identity, endpoint),
            ).fetchall()
            jobs = [BatchJob(*row) for row in rows]
            if keys is None:
                return jobs
            wanted = set(keys)
            return [
                job
                for job in jobs
                if any(
                    r[0] in wanted
                    for r in self._conn.execute(
                        "SELECT key FROM batch_items WHERE submission = ?", (job.submission,)
                    )
                )
            ]

    def submissions_of(self, key: str) -> int:
        """How many submissions (open or closed) have held ``key``: the times it was sent in a batch."""
        with self._lock:
            return int(
                self._conn.execute("SELECT COUNT(*) FROM batch_items WHERE key = ?", (key,)).fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> BatchLedger:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _held(conn: sqlite3.Connection, judge_identity: str, endpoint: str) -> set[str]:
    rows = conn.execute(
        "SELECT i.key FROM batch_items i JOIN batch_jobs j ON i.submission = j.submission "
        "WHERE j.state IN (?, ?) AND j.judge_identity = ? AND j.endpoint = ?",
        (*OPEN_STATES, judge_identity, endpoint),
    ).fetchall()
    return {r[0] for r in rows}
