"""SQLite connections as the state directory's stores use them (logs, the event queue)."""

from __future__ import annotations

import sqlite3


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
