"""Where accepted Event invocations are kept until they are done: SQLite, or memory.

The durable store is one table in ``<state dir>/events.db`` (WAL)::

    events: seq PK | request_id | function | payload | enqueued_ms | attempts | due_ms | claimed
            | last_payload | last_error   (the last attempt's response, kept for a retry)

An event is inserted before its caller is told 202 (``add``), *claimed* before an attempt
starts (``claimed = 1``, ``attempts`` counted), put back with a due time when it is retried,
and deleted once it is done (its destinations delivered).  So after a crash every event
not yet done is still there; one still claimed may have run, in part or to the end, and is
run again: Lambda's at-least-once, with the redelivery counted.

Group commit.  ``add`` is called by the callers' threads.  The first caller to find no
commit under way commits every row queued so far, its own and those of callers that
arrived meanwhile, in one transaction; the others wait for it.  A lone caller pays for one
commit; many callers share one.  Claims, retries and deletes come from the event queue's
thread in batches (``apply``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable

from ..sqlitedb import connect, enable_wal, execute_grouped, values_per_statement

_SCHEMA = """CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL, function TEXT NOT NULL, payload BLOB NOT NULL,
    enqueued_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER NOT NULL DEFAULT 0, claimed INTEGER NOT NULL DEFAULT 0,
    last_payload BLOB, last_error TEXT)"""


class QueuedEvent:
    """One accepted Event invocation, across all its attempts (one request id)."""

    __slots__ = ("seq", "request_id", "function", "payload", "enqueued_ms", "attempts",
                 "due_ms", "last_payload", "last_error", "last_version")

    def __init__(self, request_id: str, function: str, payload: bytes, enqueued_ms: int,
                 attempts: int = 0, due_ms: int = 0, seq: int = 0,
                 last_payload: bytes | None = None, last_error: str | None = None) -> None:
        self.seq = seq
        self.request_id = request_id
        self.function = function
        self.payload = payload
        self.enqueued_ms = enqueued_ms
        self.attempts = attempts  # attempts started: Lambda's approximateInvokeCount
        self.due_ms = due_ms  # a retry's earliest start; 0: at once
        self.last_payload = last_payload  # the last attempt's response or error document
        self.last_error = last_error  # its error type (None: it succeeded)
        self.last_version: str | None = None  # the version it ran on (this run's attempts)


class MemoryEventStore:
    """Durability switched off: events live in memory only and are lost with the process."""

    durable = False

    def __init__(self) -> None:
        self._seq = 0
        self._lock = threading.Lock()

    def recover(self) -> tuple[list[QueuedEvent], int]:
        return [], 0

    def add(self, events: list[QueuedEvent]) -> None:
        with self._lock:
            for event in events:
                self._seq += 1
                event.seq = self._seq

    def apply(self, *, claimed: Iterable[QueuedEvent] = (), done: Iterable[int] = (),
              retried: Iterable[QueuedEvent] = (), released: Iterable[QueuedEvent] = ()) -> None:
        pass

    def close(self) -> None:
        pass


class SqliteEventStore(MemoryEventStore):
    """Events in ``path`` (SQLite, WAL); a commit survives the process being killed."""

    durable = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self._db = connect(self.path)
        try:
            enable_wal(self._db, self.path)
            self._db.execute(_SCHEMA)
        except BaseException:
            self._db.close()
            raise
        self._seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        self._db_lock = threading.Lock()  # one connection, one transaction at a time
        self._turn = threading.Condition(self._lock)
        self._incoming: list[QueuedEvent] = []
        self._batch = 1  # the batch now gathering rows; it commits after every earlier one
        self._committed = 0
        self._committing = False
        self._failure: tuple[int, BaseException] | None = None

    def recover(self) -> tuple[list[QueuedEvent], int]:
        """Every event a previous run left, oldest first, and how many of them had been
        claimed for an attempt (they may have run: they run again)."""
        rows = self._db.execute(
            "SELECT request_id, function, payload, enqueued_ms, attempts, due_ms, seq, "
            "last_payload, last_error, claimed FROM events ORDER BY seq").fetchall()
        events = [QueuedEvent(request_id, function, bytes(payload), enqueued_ms, attempts,
                              due_ms, seq, None if last is None else bytes(last), error)
                  for request_id, function, payload, enqueued_ms, attempts, due_ms, seq, last,
                  error, _ in rows]
        return events, sum(row[-1] for row in rows)

    def add(self, events: list[QueuedEvent]) -> None:
        """Persist ``events`` (assigning their ``seq``); return once they are committed."""
        with self._turn:
            for event in events:
                self._seq += 1
                event.seq = self._seq
            self._incoming += events
            batch = self._batch
            while self._committed < batch:
                if not self._committing:
                    break  # this caller commits the batch: its own rows and the others'
                self._turn.wait()
            else:
                self._raise_if_failed(batch)
                return
            self._committing = True
            rows, self._incoming = self._incoming, []
            self._batch += 1
        error: BaseException | None = None
        values: list[object] = []
        for e in rows:
            values += (e.seq, e.request_id, e.function, e.payload, e.enqueued_ms)
        try:
            with self._db_lock:
                if len(values) <= values_per_statement(5):
                    # One statement is its own transaction: the GIL is given up (and taken
                    # back, from whatever thread holds it meanwhile) once, not three times.
                    _insert(self._db, values)
                else:
                    self._transaction(lambda db: _insert(db, values))
        except BaseException as exc:
            error = exc
            raise
        finally:
            with self._turn:
                self._committed = batch
                self._committing = False
                if error is not None:
                    self._failure = (batch, error)
                self._turn.notify_all()

    def _raise_if_failed(self, batch: int) -> None:
        if self._failure is not None and self._failure[0] == batch:
            raise self._failure[1]

    def apply(self, *, claimed: Iterable[QueuedEvent] = (), done: Iterable[int] = (),
              retried: Iterable[QueuedEvent] = (), released: Iterable[QueuedEvent] = ()) -> None:
        """Record in one transaction: attempts about to start (``claimed``), events done
        (``done``: their seqs), retries scheduled and claims given back unstarted."""
        claims, deletions = _by_attempts(claimed), list(done)
        retries = [(e.due_ms, e.last_payload, e.last_error, e.seq) for e in retried]
        releases = _by_attempts(released)
        if not (claims or deletions or retries or releases):
            return

        def write(db: sqlite3.Connection) -> None:
            for attempts, seqs in claims.items():
                execute_grouped(db, "UPDATE events SET claimed = 1, attempts = ? WHERE seq IN (",
                                "?", ")", seqs, 1, (attempts,))
            execute_grouped(db, "DELETE FROM events WHERE seq IN (", "?", ")", deletions, 1)
            # A retry's row is its own (its response kept): few, after failures only.
            db.executemany("UPDATE events SET claimed = 0, due_ms = ?, last_payload = ?, "
                           "last_error = ? WHERE seq = ?", retries)
            for attempts, seqs in releases.items():
                execute_grouped(db, "UPDATE events SET claimed = 0, attempts = ? WHERE seq IN (",
                                "?", ")", seqs, 1, (attempts,))

        with self._db_lock:
            self._transaction(write)

    def _transaction(self, write: Callable[[sqlite3.Connection], None]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            write(db)
            db.execute("COMMIT")
        except sqlite3.Error:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._db_lock:
            self._db.close()


def _insert(db: sqlite3.Connection, values: list[object]) -> None:
    execute_grouped(db, "INSERT INTO events (seq, request_id, function, payload, enqueued_ms) "
                    "VALUES ", "(?, ?, ?, ?, ?)", "", values, 5)


def _by_attempts(events: Iterable[QueuedEvent]) -> dict[int, list[int]]:
    """The seqs of ``events`` by their attempt count: one statement sets each count (a
    claim's is mostly the same for all, 1 for events never run)."""
    seqs: dict[int, list[int]] = {}
    for event in events:
        seqs.setdefault(event.attempts, []).append(event.seq)
    return seqs
