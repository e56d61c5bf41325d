"""Lambda's platform log lines and the per-function log book.

Every invocation leaves ``START``, the function's own output, ``END`` and ``REPORT`` in
Lambda's text format (``REPORT`` fields tab-separated, each followed by a tab).  The book
keeps the newest records of each function in memory.
"""

from __future__ import annotations

import base64
import time
from collections import deque

import msgspec

TAIL_BYTES = 4096
_KEEP_RECORDS = 100_000


class LogRecord(msgspec.Struct, frozen=True, gc=False):
    """One log message: a platform line or a chunk of the function's output."""

    timestamp_ms: int
    request_id: str
    message: str


def start_line(request_id: str, version: str = "$LATEST") -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report_line(
    request_id: str,
    duration_ns: int,
    billed_ms: int,
    memory_mb: int,
    max_used_mb: int,
    init_ns: int | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    """Lambda's REPORT line; ``init_ns`` only on a worker's first invocation."""
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ns / 1e6:.2f} ms\t"
        f"Billed Duration: {billed_ms} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_used_mb} MB\t"
    )
    if init_ns is not None:
        line += f"Init Duration: {init_ns / 1e6:.2f} ms\t"
    if status is not None:
        line += f"Status: {status}\t"
        if error_type is not None:
            line += f"Error Type: {error_type}\t"
    return line + "\n"


def timeout_line(request_id: str, timeout_s: int) -> str:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds\n"


def tail(text: str) -> str:
    """``X-Amz-Log-Result``: base64 of the last 4 KB of an invocation's log."""
    return base64.b64encode(text.encode()[-TAIL_BYTES:]).decode()


class LogBook:
    """The newest log records of every function, oldest first."""

    def __init__(self) -> None:
        self._books: dict[str, deque[LogRecord]] = {}

    def add(self, function: str, request_id: str, text: str) -> None:
        book = self._books.get(function)
        if book is None:
            book = self._books[function] = deque(maxlen=_KEEP_RECORDS)
        book.append(LogRecord(time.time_ns() // 1_000_000, request_id, text))

    def records(self, function: str) -> list[LogRecord]:
        return list(self._books.get(function, ()))

    def forget(self, function: str) -> None:
        self._books.pop(function, None)
