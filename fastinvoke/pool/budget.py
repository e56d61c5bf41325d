"""The host memory budget: workers' memory limits never add up to more than the machine
has (or what it is configured to give), so a flood of invocations queues instead of
pushing the machine into swap."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

from .records import FunctionPool, WorkerRecord

_log = logging.getLogger("fastinvoke")
_WARN_EVERY_S = 60.0


def host_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


class MemoryBudget:
    """Memory sizes of live workers (forked and not yet forgotten), against ``limit_mb``.

    ``starved`` holds the pools whose queued invocations wait for room; the supervisor
    grows them again whenever a worker's memory is given back."""

    def __init__(self, limit_mb: int | None) -> None:
        self.limit_mb = host_memory_mb() if limit_mb is None else limit_mb
        self.committed_mb = 0
        self.starved: dict[str, FunctionPool] = {}
        self._warned_at: dict[str, float] = {}

    def room(self, pool: FunctionPool) -> int:
        """How many more workers of ``pool`` fit."""
        return max(0, (self.limit_mb - self.committed_mb) // pool.config.memory_mb)

    def fits_ever(self, pool: FunctionPool) -> bool:
        return pool.config.memory_mb <= self.limit_mb

    def too_big(self, pool: FunctionPool) -> str:
        return (f"a worker of {pool.name} needs {pool.config.memory_mb} MB, more than the host "
                f"memory budget of {self.limit_mb} MB: lower its MemorySize or raise "
                "Invoker(memory_budget_mb=...)")

    def starve(self, pool: FunctionPool) -> None:
        self.starved[pool.name] = pool
        now = time.monotonic()
        if now >= self._warned_at.get(pool.name, 0.0):  # at most once a minute a function
            self._warned_at[pool.name] = now + _WARN_EVERY_S
            _log.warning(
                "fastinvoke: the host memory budget (%d MB) is taken by running workers; "
                "invocations of %s wait for one to end. Raise Invoker(memory_budget_mb=...) "
                "or lower memory sizes to run more at once.", self.limit_mb, pool.name)

    def wants_room(self, pool: FunctionPool) -> bool:
        """Whether a function other than ``pool`` waits for memory (an idle worker of
        ``pool`` should then make room).  Forgets functions that no longer wait."""
        for name, starved in list(self.starved.items()):
            if not starved.queue or starved.deleted:
                del self.starved[name]
            elif starved is not pool:
                return True
        return False

    def victims(self, workers: Iterable[WorkerRecord], idle: Callable[[WorkerRecord], bool],
                pool: FunctionPool, wanted: int) -> list[WorkerRecord]:
        """Idle workers of other functions to stop, least recently used first, so that
        ``wanted`` more workers of ``pool`` fit (counting memory already on its way back
        from workers that are stopping)."""
        needed = wanted * pool.config.memory_mb - (self.limit_mb - self.committed_mb)
        workers = list(workers)
        needed -= sum(record.pool.config.memory_mb for record in workers
                      if record.state in ("stopping", "killed"))
        candidates = sorted(
            (record for record in workers
             if idle(record) and not record.provisioned and record.pool is not pool),
            key=lambda record: record.last_used_ns)
        chosen = []
        for record in candidates:
            if needed <= 0:
                break
            chosen.append(record)
            needed -= record.pool.config.memory_mb
        return chosen
