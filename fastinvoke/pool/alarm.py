"""The supervisor thread's alarm: what wakes it, and when it will wake by itself."""

from __future__ import annotations

import os


class Alarm:
    """An eventfd the supervisor thread sleeps on (``ring`` wakes it from any thread), and
    ``wake_at_ns``, when it plans to look at deadlines next unless rung.  A caller whose
    invocation's deadline is earlier rings it; one whose deadline is later need not, which
    spares every call a thread switch."""

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.wake_at_ns = 0

    def ring(self) -> None:
        os.eventfd_write(self.fd, 1)

    def clear(self) -> None:
        os.eventfd_read(self.fd)

    def close(self) -> None:
        os.close(self.fd)
