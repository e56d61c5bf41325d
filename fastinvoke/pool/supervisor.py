"""The supervisor: templates, workers, deadlines and healing — the pool's policy.

One thread, started with the Invoker, does everything that must happen even when no
caller is waiting: it starts template processes (from this one long-lived thread, so
their parent-death signal is tied to the Invoker, not to whichever caller thread asked),
reads what templates report (Init outcome, forks, exits), kills workers that pass their
deadline, stops workers idle for longer than the keep-warm time, and replaces what died.
Growing a pool (``grow``) is also called by callers, under the dispatcher's lock, when an
invocation finds no idle worker.

Failure policy.  A worker that dies mid-invocation fails that invocation with Lambda's
``Runtime.ExitError`` and is replaced on demand.  Init failing is reported to every
invocation waiting for it; the next invocation retries Init (as Lambda does) — nothing
retries in the background, so a broken function never spins.  Workers that keep dying
before they are ready trip a breaker: waiting invocations fail instead of re-forking.
"""

from __future__ import annotations

import itertools
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections import deque

import msgspec

from .. import wire
from .._core import monotonic_ns
from ..dispatch import Dispatcher, Invocation
from ..logs import timeout_line
from ..metering import CRASH, FUNCTION_ERROR, OUT_OF_MEMORY, TIMEOUT
from ..runtime.faults import error_log_line, exit_reason
from .budget import MemoryBudget
from .cgroups import CgroupError, Group, Instance, cpu_share
from .environment import function_environment
from .workers import FunctionPool, WorkerRecord

_log = logging.getLogger(__name__)

MAX_BOOT_FAILURES = 3
INIT_TIMEOUT_NS = 10_000_000_000  # Lambda's limit on the Init phase of on-demand functions
_REPLIES = "replies"  # selector key data of the dispatcher's eventfd
_MAX_SLEEP_NS = 1_000_000_000  # = Lambda's shortest timeout (1 s)
_SHUTDOWN_GRACE_S = 5.0
# How long a worker may spin for its next request after a reply (it adapts below this).
# Only where spinning costs the function nothing it is billed or limited for: a worker
# held to a fraction of a CPU would spend its own quota waiting.
MAX_WORKER_SPIN_NS = 100_000


class Supervisor:
    """Invariants: every live worker has a record in ``workers`` and in its pool; a
    record's pid is known once the template reported the fork or the worker said Hello;
    ``wake_at_ns`` is when the supervisor thread will next look at deadlines unless woken."""

    def __init__(self, dispatcher: Dispatcher, state_dir: str, region: str,
                 keep_warm_s: float, cgroups: Instance | None = None,
                 cpu_limits: str = "proportional", memory_limits: bool = True,
                 memory_budget_mb: int | None = None, spare_workers: bool = True) -> None:
        self.dispatcher = dispatcher
        self.spare_workers = spare_workers
        self.budget = MemoryBudget(memory_budget_mb)
        self.cgroups = cgroups
        self.cpu_limits = cpu_limits
        self.memory_limits = memory_limits
        self.host_cpus = os.cpu_count() or 1
        dispatcher.supervisor = self
        self.lock = dispatcher.lock
        self.ended = threading.Condition(self.lock)  # notified when workers are forgotten
        self.log_dir = os.path.join(state_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.region = region
        self.keep_warm_ns = int(keep_warm_s * 1e9)
        self.pools: dict[str, FunctionPool] = {}
        self.workers: dict[bytes, WorkerRecord] = {}
        self._by_pid: dict[int, WorkerRecord] = {}
        self._worker_ids = itertools.count(1)
        self._to_spawn: deque[tuple[FunctionPool, int]] = deque()  # with its generation
        self._dead_groups: deque[Group] = deque()  # to remove outside the lock
        self._buffers: dict[int, bytes] = {}
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_fd, selectors.EVENT_READ, None)
        self._stopping = False
        self._watching_replies = False
        self.wake_at_ns = 0
        self._thread = threading.Thread(target=self._run, name="fastinvoke-supervisor",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        os.eventfd_write(self._wake_fd, 1)

    # -- pools (lock held) ------------------------------------------------------------------

    def add(self, pool: FunctionPool) -> None:
        """Take ``pool`` under supervision and start its Init."""
        self.pools[pool.name] = pool
        self.boot(pool)

    def boot(self, pool: FunctionPool) -> None:
        """Have the supervisor thread start ``pool``'s template (Init)."""
        pool.state = "booting"
        pool.init_deadline_ns = monotonic_ns() + INIT_TIMEOUT_NS
        self._to_spawn.append((pool, pool.generation))
        self.wake()

    def grow(self, pool: FunctionPool) -> None:
        """Fork as many workers as queued invocations and provisioned concurrency need."""
        if pool.state in ("failed", "dead"):
            if pool.queue or pool.config.provisioned:
                self.boot(pool)
            return
        if pool.state != "ready":
            return
        live = len(pool.workers)
        wanted = max(len(pool.queue) - pool.starting, pool.config.provisioned - live)
        count = min(wanted, pool.max_workers - live)
        if count <= 0:
            return
        if pool.boot_failures >= MAX_BOOT_FAILURES:
            pool.boot_failures = 0  # the next invocation may try again
            self._fail_queue(pool, "Runtime.ExitError",
                             f"workers of {pool.name} died {MAX_BOOT_FAILURES} times before "
                             f"becoming ready; read {self.log_dir} for their output")
            return
        room = self.budget.room(pool)
        if room < count:
            if not self.budget.fits_ever(pool):
                self._fail_queue(pool, "Runtime.Unknown", self.budget.too_big(pool))
                return
            for record in self.budget.victims(self.workers.values(), self.is_idle, pool,
                                              count - room):
                self.stop_worker(record)
            if pool.queue:
                self.budget.starve(pool)
            count = room
        for _ in range(count):
            provisioned = len(pool.workers) < pool.config.provisioned
            self._fork(pool, provisioned)

    def keep_spare(self, pool: FunctionPool) -> None:
        """``pool`` just gave its last idle worker an invocation: fork the next one now, so
        a rise in its concurrency finds a worker ready instead of waiting for a fork (lock
        held).  A spare is a worker like any other: it counts against ``max_workers`` and
        the memory budget (it is not forked where it would not fit, and never stops another
        function's worker), its first invocation is a cold start with its Init Duration,
        and it ends after the keep-warm time unused."""
        if (self.spare_workers and pool.state == "ready" and not pool.starting
                and not pool.boot_failures and len(pool.workers) < pool.max_workers
                and self.budget.room(pool) >= 1):
            self._fork(pool, False)

    def _fork(self, pool: FunctionPool, provisioned: bool) -> None:
        name = f"w{next(self._worker_ids)}-{pool.name}"
        record = WorkerRecord(name.encode(), pool, os.path.join(self.log_dir, name + ".log"),
                              provisioned)
        request = wire.Fork(name, record.log_stream, provisioned,
                            max_spin_ns=self._worker_spin_ns(pool))
        if self.cgroups is not None:
            try:
                record.group = group = self.cgroups.group(
                    name, pool.config.memory_mb, self.cpu_limits, self.host_cpus,
                    self.memory_limits)
            except CgroupError as exc:
                pool.boot_failures += 1
                self._fail_queue(pool, "Runtime.ExitError", str(exc))
                return
            request.cgroup_procs = [os.path.join(d, "cgroup.procs") for d in group.dirs]
            request.memory_peak = _peak_file(group)
            if group.kind == "rlimit" and self.memory_limits:
                request.rlimit_mb = pool.config.memory_mb
        pool.workers[record.id] = record
        self.workers[record.id] = record
        self.budget.committed_mb += pool.config.memory_mb
        pool.starting += 1
        fds = self.dispatcher.open_link(record.id)
        try:
            socket.send_fds(pool.control, [wire.encode_line(request)], fds)
        except OSError:
            pass  # the template is gone; its end of the report pipe tells _on_template_eof

    def _worker_spin_ns(self, pool: FunctionPool) -> int:
        if self.host_cpus < 2:
            return 0  # nobody else could run while it spins
        if self.cgroups is not None and self.cpu_limits == "proportional" \
                and cpu_share(pool.config.memory_mb, self.host_cpus) < 1.0:
            return 0
        return MAX_WORKER_SPIN_NS

    def worker_ready(self, worker: bytes, hello: wire.Hello) -> WorkerRecord | None:
        """A worker said Hello: make it idle.  None means it must be stopped."""
        record = self.workers.get(worker)
        if record is None or record.state != "starting" or hello.protocol != wire.PROTOCOL:
            return None
        if record.generation != record.pool.generation:  # forked before a renew
            record.state = "stopping"
            record.pool.starting -= 1
            self.grow(record.pool)  # it was counted as coming for the queue
            return None
        record.state = "idle"
        record.pid = hello.pid
        record.init_ns = hello.init_ns
        record.last_used_ns = monotonic_ns()
        self._by_pid[hello.pid] = record
        record.pool.starting -= 1
        record.pool.boot_failures = 0
        return record

    def remove(self, pool: FunctionPool) -> None:
        """Stop ``pool``'s template and workers (lock held)."""
        self.pools.pop(pool.name, None)
        pool.deleted = True
        self._fail_queue(pool, "Runtime.ExitError", "the function was deleted")
        for record in list(pool.workers.values()):
            found = self.dispatcher.core.drop_worker(record.id)
            if found is not None:
                self._finish_crashed(found[1], record, "the function was deleted")
            self._forget(record)
        self._close_template(pool)
        for generation in list(pool.retired):
            pool.retired.pop(generation).close()

    def renew(self, pool: FunctionPool) -> None:
        """New execution environments for ``pool``'s changed configuration (lock held).

        Init runs again in a new template, and invocations from now on wait for it; the
        current workers finish what they run and are then stopped, and their template
        ends with the last of them (``_forget``).
        """
        if pool.control is not None:
            pool.retired[pool.generation] = pool.control
            pool.control = None
        template, pool.template = pool.template, None
        if pool.state == "booting" and template is not None:
            template.kill()  # still in Init: it has no workers and does not read its pipe
        pool.generation += 1
        for worker in self.dispatcher.core.idle_workers(pool.name):  # not the busy ones
            self.stop_worker(self.workers[worker])
        self._end_retired(pool)
        self.boot(pool)

    def _end_retired(self, pool: FunctionPool) -> None:
        """Close the pipes of retired templates whose last worker is gone: they exit."""
        live = {record.generation for record in pool.workers.values()}
        for generation in [g for g in pool.retired if g not in live]:
            pool.retired.pop(generation).close()

    # -- the supervisor thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.lock:
                stopping = self._stopping
                if not stopping:
                    timeout = self._plan()
            if stopping:
                self._shut_down()
                return
            try:
                self._step(self._selector.select(timeout))
            except Exception:
                # This thread heals every pool: a bug met once must not end it and leave
                # every caller waiting.  Say so loudly, and go on.
                _log.exception("fastinvoke's supervisor met an error; it goes on")

    def _step(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        """One round: what the selector reported, then deadlines and keep-warm."""
        while self._dead_groups:
            self._dead_groups.popleft().remove()
        while self._to_spawn:
            pool, generation = self._to_spawn.popleft()
            try:
                self._spawn(pool, generation)
            except OSError as exc:
                with self.lock:
                    self._spawn_failed(pool, exc)
        with self.lock:
            for key, _ in events:
                if key.data is None:
                    os.eventfd_read(self._wake_fd)
                elif key.data is _REPLIES:
                    self.dispatcher.clear_wake_up()
                else:
                    self._read_template(key.fd, *key.data)
            self.dispatcher.collect()
            now = monotonic_ns()
            self._expire(now)
            self._expire_init(now)
            self._stop_idle(now)

    def _spawn_failed(self, pool: FunctionPool, exc: OSError) -> None:
        """The template could not even start (lock held): an Init failure for the
        invocations waiting; the next one tries again."""
        if pool.state == "booting":
            self._init_failed(pool, {
                "errorType": "Runtime.Unknown",
                "errorMessage": f"could not start the function's environment: {exc}; check "
                                f"its code directory {os.path.abspath(pool.config.code)}",
            })

    def _init_failed(self, pool: FunctionPool, error: dict) -> None:
        """Init failed (lock held): ``error`` answers every invocation waiting for it; the
        next one retries Init, as Lambda does."""
        pool.state = "failed"
        pool.init_error = error
        while pool.queue:
            self._finish_init_failed(pool.queue.popleft())

    def _plan(self) -> float | None:
        """When to wake next: the nearest deadline or keep-warm expiry (lock held).

        Also watch the workers' replies while Event invocations are outstanding: nobody
        else reads their replies (or the Hello of the worker forked for them)."""
        watch = self.dispatcher.unattended > 0
        if watch != self._watching_replies:
            if watch:
                self._selector.register(self.dispatcher.fd, selectors.EVENT_READ, _REPLIES)
                self.dispatcher.bell.raise_()
            else:
                self._selector.unregister(self.dispatcher.fd)
                self.dispatcher.bell.lower()
            self._watching_replies = watch
        # Never sleep longer than the shortest function timeout: then a new invocation's
        # deadline is never earlier than the planned wake-up, and sending it need not
        # wake this thread (which would cost the caller a thread switch on every call).
        now = monotonic_ns()
        wake_at = now + _MAX_SLEEP_NS
        deadline = self.dispatcher.core.next_deadline()
        if 0 <= deadline < wake_at:
            wake_at = deadline
        for record in self.workers.values():
            if not record.provisioned and self.is_idle(record):
                wake_at = min(wake_at, record.last_used_ns + self.keep_warm_ns)
        for pool in self.pools.values():
            if pool.state == "booting":
                wake_at = min(wake_at, pool.init_deadline_ns)
        self.wake_at_ns = wake_at
        if watch and self.dispatcher.replies_waiting():
            return 0.0  # the last look: a reply published before the doorbell rang
        return max(0.0, (wake_at - now) / 1e9)

    def _spawn(self, pool: FunctionPool, generation: int) -> None:
        """Start ``pool``'s template process (supervisor thread, lock not held), unless
        ``renew`` has replaced the configuration it was asked for."""
        if generation != pool.generation:
            return
        config = pool.config
        code_dir = os.path.abspath(config.code)
        # Fork requests travel with the new worker's link fds: a socket, not a pipe.
        control, to_template = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        reports, from_template = os.pipe2(os.O_CLOEXEC)
        boot = wire.Boot(config.name, config.handler, code_dir, self.log_dir,
                         to_template.fileno(), from_template, os.getpid(), config.prefork,
                         config.runtime)
        init_log = os.path.join(self.log_dir, f"{config.name}.init.log")
        try:
            with open(init_log, "ab") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "fastinvoke.runtime.template",
                     wire.encode_boot(boot).decode()],
                    cwd=code_dir, env=function_environment(config, self.region, code_dir),
                    stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                    pass_fds=(to_template.fileno(), from_template), start_new_session=True,
                )
        except BaseException:
            control.close()
            os.close(reports)
            raise
        finally:
            to_template.close()
            os.close(from_template)
        with self.lock:
            self._buffers[reports] = b""
            self._selector.register(reports, selectors.EVENT_READ, (pool, process))
            if generation != pool.generation:  # renewed while it started: it must not serve
                control.close()
                process.kill()  # its end of the report pipe closes; that reaps it
                return
            pool.template = process
            self._close_template(pool)  # a template whose Init failed: its end not yet read
            pool.control = control

    def _read_template(self, fd: int, pool: FunctionPool,
                       process: subprocess.Popen[bytes]) -> None:
        chunk = os.read(fd, 65536)
        if not chunk:
            self._on_template_eof(fd, pool, process)
            return
        *lines, self._buffers[fd] = (self._buffers[fd] + chunk).split(b"\n")
        for line in lines:
            message = wire.decode_from_template(line)
            if process is not pool.template and type(message) in (wire.Ready, wire.InitFailed):
                continue  # the Init of a template replaced by ``renew``
            self._on_template_message(pool, message)

    def _on_template_message(self, pool: FunctionPool, message: msgspec.Struct) -> None:
        kind = type(message)
        if kind is wire.Exited:
            self._on_exit(message)
        elif kind is wire.Forked:
            record = self.workers.get(message.worker.encode())
            if record is not None:
                record.pid = message.pid
                self._by_pid[message.pid] = record
        elif kind is wire.Ready:
            pool.state = "ready"
            pool.init_ns = message.init_ns
            pool.init_error = None
            self.grow(pool)
        elif kind is wire.InitFailed:
            pool.init_ns = message.init_ns
            self._init_failed(pool, message.error)
        elif kind is wire.ForkFailed:
            record = self.workers.get(message.worker.encode())
            if record is not None:
                self._forget(record)
                pool.starting -= 1
                pool.boot_failures += 1
            self.grow(pool)

    def _on_template_eof(self, fd: int, pool: FunctionPool,
                         process: subprocess.Popen[bytes]) -> None:
        self._selector.unregister(fd)
        os.close(fd)
        del self._buffers[fd]
        status = process.wait()
        if process is not pool.template:
            return  # an earlier template (its Init failed); a newer one is running
        self._close_template(pool)
        if pool.state == "booting":  # it ended before Init finished: an Init failure
            reason = exit_reason(-1, -status) if status < 0 else exit_reason(status, 0)
            error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId:  Error: {reason} (its output is in "
                                f"{self.log_dir}/{pool.name}.init.log)",
            }
            if pool.init_timed_out:
                pool.init_timed_out = False
                error = {"errorType": "Sandbox.Timedout",
                         "errorMessage": "Init timed out after 10.00 seconds"}
            self._init_failed(pool, error)
        elif pool.state != "failed":
            pool.state = "dead"
            for record in list(pool.workers.values()):  # they die with their template
                found = self.dispatcher.core.drop_worker(record.id)
                if found is not None:
                    self._finish_crashed(found[1], record, exit_reason(-1, signal.SIGKILL))
                self._forget(record)
            pool.starting = 0
        if not pool.deleted and not self._stopping:
            self.grow(pool)

    def _on_exit(self, exited: wire.Exited) -> None:
        record = self._by_pid.get(exited.pid)
        if record is None:
            return
        pool = record.pool
        if record.state == "starting":
            pool.starting -= 1
            pool.boot_failures += 1
        self.dispatcher.collect()  # a reply it published before it ended still counts
        link = self.dispatcher.links.get(record.id)
        found = self.dispatcher.core.drop_worker(record.id)
        if found is not None and link is not None and not link.delivered():
            self.dispatcher.resend(found[1])  # it never began: another worker runs it
        elif found is not None:
            oom = record.group is not None and exited.signal == signal.SIGKILL \
                and record.group.oom_killed(sigkilled=True)
            self._finish_crashed(found[1], record,
                                 exit_reason(exited.exit_status, exited.signal), oom)
        self._forget(record)
        self.grow(pool)

    def _expire(self, now: int) -> None:
        """Kill the workers whose invocation passed its deadline."""
        for _, worker, invocation in self.dispatcher.core.expired(now):
            self.dispatcher.core.drop_worker(worker)
            record = self.workers[worker]
            record.state = "killed"
            _kill(record.pid)
            timeout_s = invocation.pool.config.timeout_s
            _platform_error(invocation, TIMEOUT, "Sandbox.Timedout",
                            f"Task timed out after {timeout_s:.2f} seconds")
            invocation.duration_ns = invocation.timeout_ns
            invocation.log = _unread_output(record) + timeout_line(
                invocation.request_id, timeout_s).encode()
            self._take_cold_start(record, invocation)
            self.dispatcher.complete(invocation)

    def _expire_init(self, now: int) -> None:
        """Kill templates whose Init ran past 10 s; their end reports the failure."""
        for pool in self.pools.values():
            if pool.state == "booting" and pool.template is not None \
                    and now >= pool.init_deadline_ns:
                pool.init_timed_out = True
                pool.template.kill()

    def _stop_idle(self, now: int) -> None:
        for record in list(self.workers.values()):
            if (not record.provisioned and now - record.last_used_ns >= self.keep_warm_ns
                    and self.is_idle(record)):
                self.stop_worker(record)

    def is_idle(self, record: WorkerRecord) -> bool:
        """Ready, with nothing in flight (``record.state`` says "idle" of a busy one too:
        the hot path does not keep it)."""
        return self.dispatcher.core.is_idle(record.id)

    def stop_worker(self, record: WorkerRecord) -> None:
        """Ask an idle worker to exit; it is no longer given work (lock held)."""
        self.dispatcher.core.drop_worker(record.id)
        record.state = "stopping"
        self.dispatcher.send_stop(record.id)

    # -- finishing invocations that did not get a reply (lock held) -------------------------

    def _finish_crashed(self, invocation: Invocation, record: WorkerRecord, reason: str,
                        out_of_memory: bool = False) -> None:
        _platform_error(invocation, OUT_OF_MEMORY if out_of_memory else CRASH,
                        "Runtime.ExitError", reason)
        if record.group is not None:
            invocation.max_rss_kb = record.group.memory_peak_bytes() >> 10
        invocation.duration_ns = monotonic_ns() - invocation.started_ns
        invocation.log = _unread_output(record) + (
            f"RequestId: {invocation.request_id} Error: {reason}\nRuntime.ExitError\n").encode()
        self._take_cold_start(record, invocation)
        self.dispatcher.complete(invocation)

    def _finish_init_failed(self, invocation: Invocation) -> None:
        document = invocation.pool.init_error or {}
        invocation.outcome = FUNCTION_ERROR
        invocation.error_type = document.get("errorType")
        invocation.payload = msgspec.json.encode(document)
        invocation.log = error_log_line(document).encode()
        invocation.cold = True
        invocation.init_ns = invocation.pool.init_ns
        self.dispatcher.complete(invocation)

    def _fail_queue(self, pool: FunctionPool, error_type: str, message: str) -> None:
        while pool.queue:
            invocation = pool.queue.popleft()
            _platform_error(invocation, CRASH, error_type, message)
            self.dispatcher.complete(invocation)

    @staticmethod
    def _take_cold_start(record: WorkerRecord, invocation: Invocation) -> None:
        invocation.log_stream = record.log_stream
        if record.provisioned:
            invocation.pool.meter.served_provisioned()
        if record.cold:
            record.cold = False
            invocation.cold = True
            invocation.init_ns = record.init_ns

    # -- bookkeeping and shutdown -----------------------------------------------------------

    def _forget(self, record: WorkerRecord) -> None:
        self.ended.notify_all()
        self.dispatcher.close_link(record.id)
        if record.group is not None:
            # Removing a group may wait for the kernel to finish with a dying process:
            # the supervisor thread does it after releasing the lock callers need.
            self._dead_groups.append(record.group)
            self.wake()
        self.workers.pop(record.id, None)
        record.pool.workers.pop(record.id, None)
        if record.generation in record.pool.retired:
            self._end_retired(record.pool)
        if record.pid is not None:
            self._by_pid.pop(record.pid, None)
        try:
            os.unlink(record.log_path)
        except FileNotFoundError:
            pass
        self.budget.committed_mb -= record.pool.config.memory_mb
        starved = self.budget.starved
        for pool in list(starved.values()):
            del starved[pool.name]
            if not pool.deleted:
                self.grow(pool)  # starves it again if it still does not fit

    def _close_template(self, pool: FunctionPool) -> None:
        if pool.control is not None:
            pool.control.close()  # EOF tells the template to kill its workers and exit
            pool.control = None

    def stop(self) -> None:
        """Stop every template and worker; fail what still waits.  Idempotent."""
        with self.lock:
            self._stopping = True
        self.wake()
        self._thread.join()

    def _shut_down(self) -> None:
        """The supervisor thread's last act.  It must be this thread: the templates'
        parent-death signal fires when the thread that started them ends, which would
        kill them before they could kill and reap their workers."""
        with self.lock:
            for pool in list(self.pools.values()):
                self.remove(pool)
            self._to_spawn.clear()
        # Closing the control pipes told every template to kill its workers and exit;
        # one still in Init does not read it, so after a grace period it is killed.
        for key in list(self._selector.get_map().values()):
            if key.data is not None and key.data is not _REPLIES:
                os.close(key.fd)
                _end(key.data[1])
        if self.cgroups is not None:
            self.cgroups.remove()
        self._selector.close()
        os.close(self._wake_fd)


def _platform_error(invocation: Invocation, outcome: int, error_type: str, reason: str) -> None:
    """Fail ``invocation`` with an error the platform reports (not the function's own):
    Lambda's compact ``{"errorType", "errorMessage": "RequestId: <id> Error: ..."}``."""
    invocation.outcome = outcome
    invocation.error_type = error_type
    invocation.payload = msgspec.json.encode({
        "errorType": error_type,
        "errorMessage": f"RequestId: {invocation.request_id} Error: {reason}",
    })


def _peak_file(group: Group) -> str | None:
    """The file that holds ``group``'s peak memory in bytes, if the kernel keeps one."""
    if group.kind == "v1":
        return os.path.join(group.dirs[0], "memory.max_usage_in_bytes")
    if group.kind == "v2" and os.path.exists(os.path.join(group.dirs[0], "memory.peak")):
        return os.path.join(group.dirs[0], "memory.peak")
    return None


def _end(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(_SHUTDOWN_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _kill(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _unread_output(record: WorkerRecord) -> bytes:
    """What the worker printed since its last reply: it never got to send it."""
    try:
        with open(record.log_path, "rb") as log:
            log.seek(record.log_offset)
            return log.read()
    except FileNotFoundError:
        return b""
