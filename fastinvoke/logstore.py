r"""Invocation logs kept in SQLite, shaped like CloudWatch Logs: groups, streams and events.

One database file per state directory, in WAL mode so that readers (``logs --follow``, maybe in
another process) never block the writer, nor the writer them::

    groups                    streams                         events
    +--------------------+    +---------------------------+    +--------------------------------+
    | id        PK       |<---| group_id                  |    | seq         PK AUTOINCREMENT   |
    | name      UNIQUE   |    | id        PK              |<---| stream_id                      |
    | retention_days     |    | name                      |    | group_id    groups.id (copy)   |
    |   NULL: never      |    | UNIQUE (group_id, name)   |    | timestamp_ms, request_id       |
    +--------------------+    +---------------------------+    | message     one line + "\n"    |
                                                               +--------------------------------+
    indexes: events (group_id, seq) for reads, tail and follow;
             events (group_id, timestamp_ms) for --since and the retention purge.

Groups are ``/aws/lambda/<function>``, streams ``YYYY/MM/DD/[$LATEST]<32 hex>`` (one a worker).
``seq`` is the ingestion order; AUTOINCREMENT never reuses one, even after a purge, so followers
page on it.  Writing stays off the invoke hot path: ``append`` puts the entry on a deque, and a
writer thread splits entries into lines and commits them in batches (one transaction every
~50 ms or 1,000 appends); ``flush`` waits for that.  Reads see committed events only.
Past a backlog of 50,000 appends, ``append`` waits for the writer: memory stays bounded
however fast invocations end (unless writing fails, when nothing waits: see ``_insert``).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import re
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import msgspec

from .emf import EmfMetrics
from .filterpatterns import MATCH_FUNCTION, Match, compile_filter
from .logs import InvocationLog, LogRecord, split_lines
from .metricfilters import MetricFilters
from .sqlitedb import connect, enable_wal, execute_grouped

RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                  2192, 2557, 2922, 3288, 3653)  # what CloudWatch's PutRetentionPolicy accepts
_BATCH = 1000  # queued appends per transaction at most; this many wake the writer early
# Appends queued at most (some 20 MB): beyond, ``append`` waits until the writer has
# committed a batch more, so invocations that end faster than their lines are written (a
# load test's) go at the writer's pace instead of queueing lines without bound.
BACKLOG = 50_000
_ROOM = BACKLOG - _BATCH  # the backlog at which a waiting append goes on
_INTERVAL_S, _PURGE_EVERY_S = 0.05, 60.0  # group commit period; retention purge period
_PAGE = 1000  # events per query while following
_DAY_MS = 86_400_000
_log = logging.getLogger(__name__)

_SCHEMA = """BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS groups (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    retention_days INTEGER);
CREATE TABLE IF NOT EXISTS streams (id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL REFERENCES groups (id), name TEXT NOT NULL, UNIQUE (group_id, name));
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL, stream_id INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_group ON events (group_id, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (group_id, timestamp_ms);
COMMIT;"""
# Rows go in by the hundred (execute_grouped), not one statement each.
_INSERT = "INSERT INTO events (group_id, stream_id, timestamp_ms, request_id, message) VALUES "
_GROUP_ID = "(SELECT id FROM groups WHERE name = ?)"
_SELECT = ("SELECT e.seq, e.timestamp_ms, s.name, e.request_id, e.message FROM events e "
           f"JOIN streams s ON s.id = e.stream_id WHERE e.group_id = {_GROUP_ID}")


class LogEntry(msgspec.Struct, frozen=True, gc=False):
    """The text of one invocation's log (START ... REPORT), stored as one event per line."""
    timestamp_ms: int
    request_id: str
    text: str


Entry = LogEntry | InvocationLog  # an InvocationLog is formatted by the writer thread


class LogEvent(msgspec.Struct, frozen=True, gc=False):
    seq: int
    timestamp_ms: int
    stream: str
    request_id: str
    message: str  # one line, ending in "\n"


def entry_lines(entry: Entry) -> list[str]:
    return entry.lines() if isinstance(entry, InvocationLog) else split_lines(entry.text)


_DURATION_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)"
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": _DAY_MS, "w": 7 * _DAY_MS}


def parse_duration(text: str) -> int:
    """A ``--since`` duration (30s, 5m, 2h, 1d, 1w, 1h30m, 250ms) in milliseconds."""
    compact = text.strip().replace(" ", "")
    if not re.fullmatch(f"(?:{_DURATION_PART})+", compact):
        raise ValueError(f"invalid duration {text!r}: expected a number and a unit "
                         "(ms, s, m, h, d, w), e.g. 30s, 5m, 2h, 1d, 1w or 1h30m")
    return round(sum(float(n) * _UNIT_MS[unit] for n, unit in re.findall(_DURATION_PART, compact)))


_OPEN: weakref.WeakSet[LogStore] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # The writer is a daemon thread (not to keep the interpreter alive): commit what it holds.
    for store in list(_OPEN):
        store.close()


class LogStore:
    """The log groups of one state directory, in the SQLite file ``path``."""

    def __init__(self, path: str | os.PathLike[str], emf: EmfMetrics | None = None,
                 metric_filters: MetricFilters | None = None) -> None:
        self.path = os.fspath(path)
        # They take the metrics of what is stored, in the writer thread: emf those of the
        # invocations' output, metric_filters those of every event (START... REPORT too).
        self.emf = emf
        self.metric_filters = metric_filters
        # Items: (group, stream, entries) to insert, or (fn, future) to run in order with them.
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._room = threading.Condition()  # notified as the writer brings the backlog down
        self._failing = False  # the last insert failed: appends do not wait for the writer
        self._closed = False
        self._close_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._ids: dict[tuple[str, str], tuple[int, int]] = {}  # writer thread only
        self._wconn = connect(self.path)
        try:
            enable_wal(self._wconn, self.path)
            self._wconn.executescript(_SCHEMA)
            self._rconn = connect(self.path)
        except BaseException:
            self._wconn.close()
            raise
        self._writer = threading.Thread(target=self._run, name="logstore-writer", daemon=True)
        self._writer.start()
        _OPEN.add(self)

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, group: str, stream: str, entries: Iterable[Entry]) -> None:
        """Queue entries for the writer thread and return at once (any thread)."""
        if self._closed:
            raise RuntimeError("LogStore is closed")
        self._queue.append((group, stream, entries))  # atomic: no lock on the hot path
        queued = len(self._queue)
        if queued >= _BATCH:
            if not self._wake.is_set():
                self._wake.set()
            if queued >= BACKLOG and not self._failing:
                self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Wait until the writer has committed a batch more (or fails, or the store
        closes): a wait as long as one transaction, not a stall."""
        with self._room:
            while len(self._queue) > _ROOM and not self._failing and not self._closed:
                self._room.wait(0.1)

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything appended before this call is committed."""
        if not self._closed:
            self._submit(None, timeout)

    def set_retention(self, group: str, days: int | None) -> None:
        """Expire the group's events after ``days`` (None: keep them for ever)."""
        if days is not None and days not in RETENTION_DAYS:
            raise ValueError(f"invalid retention of {days!r} days: CloudWatch allows "
                             f"{', '.join(map(str, RETENTION_DAYS))} (or None: never expire)")
        self._submit(lambda conn: conn.execute(
            "INSERT INTO groups (name, retention_days) VALUES (?, ?) ON CONFLICT (name) "
            "DO UPDATE SET retention_days = excluded.retention_days", (group, days)))

    def purge(self, now_ms: int | None = None) -> int:
        """Delete the events older than their group's retention; how many went."""
        return self._submit(lambda conn: _purge(conn, now_ms))

    def delete_group(self, group: str) -> bool:
        """Delete a group, its streams and events (appends queued before it included)."""
        def delete(conn: sqlite3.Connection) -> bool:
            self._ids.clear()
            row = conn.execute("SELECT id FROM groups WHERE name = ?", (group,)).fetchone()
            conn.execute("DELETE FROM events WHERE group_id = ?", row or (None,))
            conn.execute("DELETE FROM streams WHERE group_id = ?", row or (None,))
            return conn.execute("DELETE FROM groups WHERE id = ?", row or (None,)).rowcount > 0
        return self._submit(delete)

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the database (idempotent)."""
        with self._close_lock:
            if not self._closed:
                self._closed = True  # refuse appends, then the writer drains the queue and ends
                self._wake.set()
                with self._room:  # an append waiting for room waits no more
                    self._room.notify_all()
                self._writer.join()
                with self._read_lock:
                    self._rconn.close()
                self._wconn.close()
                _OPEN.discard(self)

    def _submit(self, fn: Callable[[sqlite3.Connection], Any] | None,
                timeout: float | None = None) -> Any:
        if self._closed:
            raise RuntimeError("LogStore is closed")
        future: Future[Any] = Future()
        self._queue.append((fn, future))
        self._wake.set()
        return future.result(timeout)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._wconn.execute("BEGIN IMMEDIATE")  # take the write lock now, not half-way through
        try:
            yield self._wconn
            self._wconn.execute("COMMIT")
        except BaseException:
            if self._wconn.in_transaction:
                self._wconn.execute("ROLLBACK")
            raise

    def _run(self) -> None:
        next_purge = 0.0
        while not (self._closed and not self._queue):
            self._wake.wait(_INTERVAL_S)
            self._wake.clear()
            try:  # the thread must outlive any error, or flush() would wait for ever
                while self._queue:
                    self._write_batch()
                    if len(self._queue) <= _ROOM:
                        with self._room:
                            self._room.notify_all()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + _PURGE_EVERY_S
                    with self._transaction() as conn:
                        _purge(conn, None)
            except Exception:
                _log.exception("the log writer failed")

    def _write_batch(self) -> None:
        """Commit up to _BATCH queued appends in one transaction, then run a queued call."""
        lines: list[tuple[str, str, list[tuple[int, str, str]]]] = []
        call: tuple[Any, ...] | None = None
        while self._queue and len(lines) < _BATCH:
            item = self._queue.popleft()  # only this thread pops
            if len(item) == 2:
                call = item
                break
            group, stream, entries = item
            if self.emf is not None:
                for entry in entries:
                    if type(entry) is InvocationLog:
                        self.emf.read(group, entry.output)
            try:
                events = [(entry.timestamp_ms, entry.request_id, line) for entry in entries
                          for line in entry_lines(entry)]
            except Exception:  # a caller's bug: retrying cannot help; keep the others
                _log.exception("dropped a malformed log entry for %s %s", group, stream)
                continue
            lines.append((group, stream, events))
            if self.metric_filters is not None:
                self.metric_filters.read(group, (message for _, _, message in events))
        if lines:
            self._insert(lines)
        if call is not None:
            fn, future = call
            try:
                with self._transaction() as conn:
                    result = fn(conn) if fn else None
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _insert(self, lines: list[tuple[str, str, list[tuple[int, str, str]]]]) -> None:
        for attempt in itertools.count():
            try:
                values: list[int | str] = []
                for group, stream, events in lines:
                    gid, sid = self._ids.get((group, stream)) or self._stream_ids(group, stream)
                    for ts, rid, message in events:
                        values += (gid, sid, ts, rid, message)
                with self._transaction() as conn:
                    execute_grouped(conn, _INSERT, "(?, ?, ?, ?, ?)", "", values, 5)
                self._failing = False
                return
            except sqlite3.Error as exc:
                if not self._failing:
                    self._failing = True
                    with self._room:  # nobody waits for a writer that cannot write
                        self._room.notify_all()
                # Busy (another process writing) or a full disk: keep the lines and retry;
                # give up only if closing and it keeps failing, or close would never end.
                if self._closed and attempt >= 20:
                    _log.error("lost %d log lines: %s", sum(len(e) for *_, e in lines), exc)
                    return
                if attempt == 0:
                    _log.warning("writing log lines failed; retrying: %s", exc)
                time.sleep(min(0.05 * 2 ** attempt, 1.0))

    def _stream_ids(self, group: str, stream: str) -> tuple[int, int]:
        # A transaction of its own, so the cache never keeps the id of a rolled-back insert.
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO groups (name) VALUES (?)", (group,))
            conn.execute("INSERT OR IGNORE INTO streams (group_id, name) SELECT id, ? FROM groups "
                         "WHERE name = ?", (stream, group))
            ids = self._ids[group, stream] = conn.execute(
                "SELECT g.id, s.id FROM groups g JOIN streams s ON s.group_id = g.id "
                "WHERE g.name = ? AND s.name = ?", (group, stream)).fetchone()
        return ids

    def _read(self, sql: str, params: Iterable[Any] = (),
              match: Match | None = None) -> list[Any]:
        with self._read_lock:  # one reading connection, shared by the threads
            if match is not None:  # a JSON or space-delimited pattern's test, for this query
                self._rconn.create_function(MATCH_FUNCTION, 1, match, deterministic=True)
            return self._rconn.execute(sql, tuple(params)).fetchall()

    def events(self, group: str, *, since_ms: int | None = None, pattern: str | None = None,
               limit: int | None = None, after_seq: int | None = None) -> list[LogEvent]:
        """The group's events in ingestion order: the first ``limit`` with a seq above
        ``after_seq``, at or after ``since_ms``, matching ``pattern`` (CloudWatch syntax)."""
        condition, params, match = compile_filter(pattern)
        sql = _SELECT + (f" AND {condition}" if condition else "")
        for clause, value in (("e.seq > ?", after_seq), ("e.timestamp_ms >= ?", since_ms)):
            if value is not None:
                sql += f" AND {clause}"
                params.append(value)
        sql += " ORDER BY e.seq LIMIT ?"
        params.append(-1 if limit is None else limit)  # a negative LIMIT is none
        return [LogEvent(*row) for row in self._read(sql, [group, *params], match)]

    def tail(self, group: str, n: int = 10, *, pattern: str | None = None) -> list[LogEvent]:
        """The group's last ``n`` events (matching ``pattern``), oldest first."""
        condition, params, match = compile_filter(pattern)
        sql = _SELECT + (f" AND {condition}" if condition else "") + " ORDER BY e.seq DESC LIMIT ?"
        return [LogEvent(*row) for row in reversed(self._read(sql, [group, *params, n], match))]

    def follow(self, group: str, *, since_ms: int | None = None, pattern: str | None = None,
               poll_s: float = 0.2, stop: threading.Event | None = None,
               after_seq: int | None = None) -> Iterator[LogEvent]:
        """The group's events, then new ones as they are committed (polling every
        ``poll_s``), until ``stop`` is set or the store closes."""
        last, stop = after_seq or 0, stop or threading.Event()
        while not stop.is_set() and not self._closed:
            newest = self._read("SELECT coalesce(max(seq), 0) FROM events")[0][0]
            page = self.events(group, since_ms=since_ms, pattern=pattern, limit=_PAGE,
                               after_seq=last)
            yield from page
            if len(page) == _PAGE:  # more to read now
                last = page[-1].seq
                continue
            # The query saw every seq up to newest: skip them, or a filter that matches
            # nothing would make each poll rescan them.
            last = max(last, newest, *(event.seq for event in page[-1:]))
            stop.wait(poll_s)

    def streams(self, group: str) -> list[str]:
        """The group's stream names, in order (names start with the date)."""
        sql = f"SELECT name FROM streams WHERE group_id = {_GROUP_ID} ORDER BY name"
        return [name for (name,) in self._read(sql, [group])]

    def groups(self) -> dict[str, int | None]:
        """Every group's name and retention in days (None: never expire)."""
        return dict(self._read("SELECT name, retention_days FROM groups ORDER BY name"))


def _purge(conn: sqlite3.Connection, now_ms: int | None) -> int:
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return sum(conn.execute("DELETE FROM events WHERE group_id = ? AND timestamp_ms < ?",
                            (gid, now_ms - days * _DAY_MS)).rowcount
               for gid, days in conn.execute("SELECT id, retention_days FROM groups "
                                             "WHERE retention_days IS NOT NULL").fetchall())


def records(events: list[LogEvent]) -> list[LogRecord]:
    """One record per invocation (its lines joined), in the order invocations began."""
    texts: dict[str, list[str]] = {}
    stamps: dict[str, int] = {}
    for event in events:
        texts.setdefault(event.request_id, []).append(event.message)
        stamps.setdefault(event.request_id, event.timestamp_ms)
    return [LogRecord(stamps[rid], rid, "".join(lines)) for rid, lines in texts.items()]
