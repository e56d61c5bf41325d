"""SQLite connections as the state directory's stores use them (logs, the event queue)."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit, and no reader idles
    in one (which would block checkpoints).  Shared between threads under the caller's
    own lock."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    # With WAL, NORMAL syncs at checkpoints only: a commit survives the process being
    # killed (it is in the OS's page cache), not a power cut in the next moments.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def enable_wal(conn: sqlite3.Connection, path: str) -> None:
    """WAL is a property of the file: set once, every later connection gets it."""
    if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
        raise sqlite3.OperationalError(f"{path}: SQLite cannot use WAL mode here")


# The variables one statement may have at SQLite's smallest limit
# (SQLITE_MAX_VARIABLE_NUMBER before 3.32: https://www.sqlite.org/limits.html).
_MAX_VARIABLES = 999


def execute_grouped(conn: sqlite3.Connection, head: str, group: str, tail: str,
                    values: Sequence[object], width: int, fixed: Sequence[object] = ()) -> None:
    """Run ``head`` + ``group, group, ...`` + ``tail`` over ``values`` (flat, ``width`` of
    them a group; ``fixed``: the head's own), in as few statements as the limit allows:
    an INSERT's rows, a ``WHERE seq IN (...)``.  Not ``executemany``: the sqlite3 module
    releases the GIL around every statement, and one statement a row then waits to take
    it back, each time, from whatever thread runs Python meanwhile (a busy event loop:
    up to the interpreter's switch interval a row)."""
    per = values_per_statement(width, len(fixed))
    for start in range(0, len(values), per):
        chunk = values[start:start + per]
        conn.execute(_grouped(head, group, tail, len(chunk) // width), (*fixed, *chunk))


def values_per_statement(width: int, fixed: int = 0) -> int:
    """How many values ``execute_grouped`` puts in one statement."""
    return (_MAX_VARIABLES - fixed) // width * width


@functools.lru_cache(maxsize=512)
def _grouped(head: str, group: str, tail: str, count: int) -> str:
    return head + ", ".join([group] * count) + tail
