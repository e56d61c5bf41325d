"""The worker life cycle: forking workers for what waits, making them ready, stopping
them, noticing their end, and killing the ones past their deadline or kept warm too long.

A worker that dies mid-invocation fails that invocation with Lambda's
``Runtime.ExitError`` (or its out-of-memory form) and is replaced on demand; a request it
never took goes to another worker.  Workers that keep dying before they are ready trip a
breaker: waiting invocations fail instead of re-forking.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from .. import wire
from .._core import monotonic_ns
from ..runtime.faults import exit_reason
from .alarm import Alarm
from .budget import MemoryBudget
from .cgroups import CgroupError, Group, Instance, cpu_share
from .failures import fail_queue, finish_crashed, finish_timed_out
from .hop import Hop
from .output import Outputs, take
from .records import FunctionPool, WorkerRecord
from .templates import Templates

MAX_BOOT_FAILURES = 3
# How long a worker may spin for its next request after a reply (it adapts below this).
# Only where spinning costs the function nothing it is billed or limited for: a worker
# held to a fraction of a CPU would spend its own quota waiting.
MAX_WORKER_SPIN_NS = 100_000


class Workers:
    """Invariants: every live worker has a record in ``records`` and in its pool; a
    record's pid (the one the server signals) is known once the template reported the fork
    or, where pids are the server's (not the unprivileged mode's PID namespace), the worker
    said Hello.  Records are found by (template pid, pid as that template reports it):
    each unprivileged template numbers its workers in a PID namespace of its own.
    Every method but ``remove_dead_groups`` runs with the hop's lock held."""

    deadline_slack_ns = 0  # a local worker is killed at its deadline exactly

    def __init__(self, hop: Hop, alarm: Alarm, templates: Templates, budget: MemoryBudget,
                 keep_warm_ns: int, cgroups: Instance | None, cpu_limits: str,
                 memory_limits: bool, spare_workers: bool) -> None:
        self._hop = hop
        self._alarm = alarm
        self._templates = templates
        self.budget = budget
        self.outputs = Outputs()
        self.keep_warm_ns = keep_warm_ns
        self.cgroups = cgroups
        self.cpu_limits = cpu_limits
        self.memory_limits = memory_limits
        self.spare_workers = spare_workers
        self.host_cpus = os.cpu_count() or 1
        self.records: dict[bytes, WorkerRecord] = {}
        self.ended = threading.Condition(hop.lock)  # notified when workers are forgotten
        self._by_pid: dict[tuple[int, int], WorkerRecord] = {}
        self._pid_keys: dict[bytes, tuple[int, int]] = {}  # record id -> its _by_pid key
        self._ids = itertools.count(1)
        self._dead_groups: deque[Group] = deque()  # to remove outside the lock

    # -- forking ----------------------------------------------------------------------------

    def grow(self, pool: FunctionPool) -> None:
        """Fork as many workers as queued invocations and provisioned concurrency need."""
        if pool.state in ("failed", "dead"):
            if pool.queue or pool.config.provisioned:
                self._templates.boot(pool)
            return
        if pool.state != "ready":
            return
        live = len(pool.workers)
        wanted = max(len(pool.queue) - pool.starting, pool.config.provisioned - live)
        # A reservation set to 0 while invocations waited for a worker throttles the next
        # ones, not those admitted already: one worker still runs them.
        count = min(wanted, max(pool.max_workers, 1 if pool.queue else 0) - live)
        if count <= 0:
            return
        if pool.boot_failures >= MAX_BOOT_FAILURES:
            pool.boot_failures = 0  # the next invocation may try again
            fail_queue(self._hop, pool, "Runtime.ExitError",
                       f"workers of {pool.name} died {MAX_BOOT_FAILURES} times before "
                       f"becoming ready; read {self._templates.init_log(pool)} for their "
                       "output")
            return
        room = self.budget.room(pool)
        if room < count:
            if not self.budget.fits_ever(pool):
                fail_queue(self._hop, pool, "Runtime.Unknown", self.budget.too_big(pool))
                return
            for record in self.budget.victims(self.records.values(), self.is_idle, pool,
                                              count - room):
                self.stop(record)
            if pool.queue:
                self.budget.starve(pool)
            count = room
        for _ in range(count):
            provisioned = len(pool.workers) < pool.config.provisioned
            self._fork(pool, provisioned)

    def keep_spare(self, pool: FunctionPool) -> None:
        """``pool`` just gave its last idle worker an invocation: fork the next one now, so
        a rise in its concurrency finds a worker ready instead of waiting for a fork.  A
        spare is a worker like any other: it counts against ``max_workers`` and the memory
        budget (it is not forked where it would not fit, and never stops another
        function's worker), its first invocation is a cold start with its Init Duration,
        and it ends after the keep-warm time unused."""
        if (self.spare_workers and pool.state == "ready" and not pool.starting
                and not pool.boot_failures and len(pool.workers) < pool.max_workers
                and self.budget.room(pool) >= 1):
            self._fork(pool, False)

    def _fork(self, pool: FunctionPool, provisioned: bool) -> None:
        name = f"w{next(self._ids)}-{pool.id_name}"
        record = WorkerRecord(name.encode(), pool, provisioned)
        request = wire.Fork(name, record.log_stream, provisioned,
                            max_spin_ns=self._spin_ns(pool))
        peak: list[int] = []  # an fd of the group's peak-memory file, if the kernel keeps one
        groups: list[int] = []  # the group's cgroup.procs files (it keeps them open)
        if self.cgroups is not None:
            try:
                record.group = group = self.cgroups.group(
                    name, pool.config.memory_mb, self.cpu_limits, self.host_cpus,
                    self.memory_limits)
                groups = group.procs_fds()
                peak = _open_peak(group)
            except (CgroupError, OSError) as exc:
                pool.boot_failures += 1
                if record.group is not None:
                    self._dead_groups.append(record.group)
                fail_queue(self._hop, pool, "Runtime.ExitError", str(exc))
                return
            if group.kind == "rlimit" and self.memory_limits:
                request.rlimit_mb = pool.config.memory_mb
        request.peak, request.groups = bool(peak), len(groups)
        pool.workers[record.id] = record
        self.records[record.id] = record
        self.budget.committed_mb += pool.config.memory_mb
        pool.starting += 1
        own = [self.outputs.open(record), *peak]  # the worker's once sent
        try:
            # Failing, the template is gone: its end of the report pipe tells the supervisor.
            with contextlib.suppress(OSError):
                socket.send_fds(pool.control, [wire.encode_line(request)],
                                [*self._hop.open_link(record.id), *own, *groups])
        finally:
            for fd in own:
                os.close(fd)

    def _spin_ns(self, pool: FunctionPool) -> int:
        if self.host_cpus < 2:
            return 0  # nobody else could run while it spins
        if self.cgroups is not None and self.cpu_limits == "proportional" \
                and cpu_share(pool.config.memory_mb, self.host_cpus) < 1.0:
            return 0
        return MAX_WORKER_SPIN_NS

    # -- what templates and workers report -----------------------------------------------------

    def ready(self, worker: bytes, hello: wire.Hello) -> WorkerRecord | None:
        """A worker said Hello: make it idle.  None means it must be stopped."""
        record = self.records.get(worker)
        if record is None or record.state != "starting" or hello.protocol != wire.PROTOCOL:
            return None
        if record.generation != record.pool.generation:  # forked before a renew
            record.state = "stopping"
            record.pool.starting -= 1
            self.grow(record.pool)  # it was counted as coming for the queue
            return None
        record.state = "idle"
        if record.pid is None and self._templates.same_pids:
            record.pid = hello.pid  # before the fork's report: the deadline may need it
        record.init_ns = hello.init_ns
        record.last_used_ns = monotonic_ns()
        record.pool.starting -= 1
        record.pool.boot_failures = 0
        return record

    def forked(self, message: wire.Forked, template: int, pid: int | None) -> None:
        """``template`` (its pid) forked a worker it calls ``message.pid``, which the server
        signals as ``pid`` (None: it has ended already, its Exited report follows)."""
        record = self.records.get(message.worker.encode())
        if record is not None:
            record.pid = pid
            key = self._pid_keys[record.id] = (template, message.pid)
            self._by_pid[key] = record

    def fork_failed(self, message: wire.ForkFailed) -> None:
        record = self.records.get(message.worker.encode())
        if record is not None:
            self.forget(record)
            record.pool.starting -= 1
            record.pool.boot_failures += 1

    def exited(self, exited: wire.Exited, template: int) -> None:
        """A worker ended: what it ran fails (or, never taken, goes to another worker).
        Its template reported its fork first, on the same pipe: its key is known."""
        record = self._by_pid.get((template, exited.pid))
        if record is None:
            return
        pool = record.pool
        if record.state == "starting":
            pool.starting -= 1
            pool.boot_failures += 1
        hop = self._hop
        hop.collect()  # a reply it published before it ended still counts
        found = hop.core.drop_worker(record.id)
        if found is not None and not hop.delivered(record.id, found[0]):
            hop.resend(found[1])  # it never began: another worker runs it
        elif found is not None:
            oom = record.group is not None and exited.signal == signal.SIGKILL \
                and record.group.oom_killed(sigkilled=True)
            finish_crashed(hop, found[1], record,
                           exit_reason(exited.exit_status, exited.signal), oom)
        self.forget(record)
        self.grow(pool)

    # -- stopping ---------------------------------------------------------------------------

    def is_idle(self, record: WorkerRecord) -> bool:
        """Ready, with nothing in flight (``record.state`` says "idle" of a busy one too:
        the hot path does not keep it)."""
        return self._hop.core.is_idle(record.id)

    def stop(self, record: WorkerRecord) -> None:
        """Ask an idle worker to exit; it is no longer given work."""
        self._hop.core.drop_worker(record.id)
        record.state = "stopping"
        self._hop.send_stop(record.id)

    def recycle(self, pool: FunctionPool, wait_s: float) -> int:
        """Stop ``pool``'s idle workers and wait (up to ``wait_s``) until they have ended;
        return how many were stopped."""
        idle = [record for record in pool.workers.values() if self.is_idle(record)]
        for record in idle:
            self.stop(record)
        self.ended.wait_for(lambda: not any(record.id in pool.workers for record in idle),
                            timeout=wait_s)
        return len(idle)

    def stop_idle_of(self, pool: FunctionPool) -> None:
        """Stop ``pool``'s idle workers (a renewed configuration): the busy ones finish."""
        for worker in self._hop.core.idle_workers(pool.name):
            self.stop(self.records[worker])

    def crash_all(self, pool: FunctionPool, reason: str) -> None:
        """Every worker of ``pool`` is gone (its template died, or it was deleted): what
        they ran fails with ``reason``."""
        for record in list(pool.workers.values()):
            found = self._hop.core.drop_worker(record.id)
            if found is not None:
                finish_crashed(self._hop, found[1], record, reason)
            self.forget(record)

    def expire(self, now: int) -> None:
        """Kill the workers whose invocation passed its deadline."""
        for _, worker, invocation in self._hop.core.expired(now):
            if self._hop.core.drop_worker(worker) is None:
                continue  # ended meanwhile: it must not be completed twice
            record = self.records[worker]
            record.state = "killed"
            _kill(record.pid)
            finish_timed_out(self._hop, invocation, record)
            self._hop.take_back(worker)  # what it was sent ahead: to another worker

    def stop_idle(self, now: int) -> None:
        """Stop workers kept warm, unused, for the keep-warm time (not provisioned ones)."""
        for record in kept_too_long(self.records.values(), now, self.keep_warm_ns,
                                    self.is_idle):
            self.stop(record)

    def next_idle_expiry(self, wake_at: int) -> int:
        """The earlier of ``wake_at`` and the next keep-warm expiry."""
        return next_keep_warm_expiry(self.records.values(), wake_at, self.keep_warm_ns,
                                     self.is_idle)

    # -- forgetting -------------------------------------------------------------------------

    def forget(self, record: WorkerRecord) -> None:
        self.ended.notify_all()
        self._hop.close_link(record.id)
        if record.group is not None:
            # Removing a group may wait for the kernel to finish with a dying process:
            # the supervisor thread does it after releasing the lock callers need.
            self._dead_groups.append(record.group)
            self._alarm.ring()
        self.records.pop(record.id, None)
        record.pool.workers.pop(record.id, None)
        if record.generation in record.pool.retired:
            self._templates.end_retired(record.pool)
        key = self._pid_keys.pop(record.id, None)
        if key is not None:
            self._by_pid.pop(key, None)
        leftover = take(record)
        self.outputs.close(record)
        if leftover and record.state == "starting":  # why it never became ready
            with open(self._templates.init_log(record.pool), "ab") as log:
                log.write(leftover)
        self.budget.committed_mb -= record.pool.config.memory_mb
        starved = self.budget.starved
        for pool in list(starved.values()):
            del starved[pool.name]
            if not pool.deleted:
                self.grow(pool)  # starves it again if it still does not fit

    def remove_dead_groups(self) -> None:
        """Remove the cgroups of forgotten workers (supervisor thread, lock not held)."""
        while self._dead_groups:
            self._dead_groups.popleft().remove()


class KeptWarm(Protocol):
    """A worker as the keep-warm rules see it (a local one, or a Ray slot)."""

    provisioned: bool
    last_used_ns: int


Worker = TypeVar("Worker", bound=KeptWarm)


def kept_too_long(workers: Iterable[Worker], now: int, keep_warm_ns: int,
                  idle: Callable[[Worker], bool]) -> list[Worker]:
    """The idle workers unused for ``keep_warm_ns`` (provisioned ones are kept)."""
    return [worker for worker in list(workers) if not worker.provisioned
            and now - worker.last_used_ns >= keep_warm_ns and idle(worker)]


def next_keep_warm_expiry(workers: Iterable[Worker], wake_at: int, keep_warm_ns: int,
                          idle: Callable[[Worker], bool]) -> int:
    """The earlier of ``wake_at`` and when the first idle worker's keep-warm time ends."""
    for worker in workers:
        if not worker.provisioned and idle(worker):
            wake_at = min(wake_at, worker.last_used_ns + keep_warm_ns)
    return wake_at


def _open_peak(group: Group) -> list[int]:
    """An fd of the file that holds ``group``'s peak memory in bytes, if the kernel keeps
    one (the worker reads it for Max Memory Used)."""
    name = {"v1": "memory.max_usage_in_bytes", "v2": "memory.peak"}.get(group.kind)
    if name is None or not (group.dirs[0] / name).exists():
        return []
    return [os.open(group.dirs[0] / name, os.O_RDONLY | os.O_CLOEXEC)]


def _kill(pid: int | None) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
