"""The supervisor: one thread that does what must happen even when no caller is waiting.

It starts template processes (from this one long-lived thread, so their parent-death
signal is tied to the Invoker, not to whichever caller thread asked), reads what
templates report (Init outcome, forks, exits), kills workers that pass their deadline,
stops workers idle for longer than the keep-warm time, and replaces what died.  The jobs
themselves live in ``templates`` (template processes), ``lifecycle`` (workers) and
``failures`` (invocations that got no reply); this module is their loop.

Failure policy.  Init failing is reported to every invocation waiting for it; the next
invocation retries Init (as Lambda does): nothing retries in the background, so a broken
function never spins.
"""

from __future__ import annotations

import logging
import selectors
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import wire
from .._core import monotonic_ns
from ..runtime.faults import exit_reason
from .alarm import Alarm
from .budget import MemoryBudget
from .cgroups import Instance
from .environment import Environment
from .failures import fail_queue
from .hop import Hop
from .lifecycle import Workers
from .records import FunctionPool

if TYPE_CHECKING:
    from ..config import FunctionConfig
from .templates import Message, Templates

_log = logging.getLogger(__name__)

_REPLIES = "replies"  # selector key data of the hop's eventfd
_MAX_SLEEP_NS = 1_000_000_000  # = Lambda's shortest timeout (1 s)


class Supervisor:
    """The pools of one Invoker and the thread that tends them.  ``start`` starts the
    thread once the dispatcher has the ``workers`` and ``alarm`` it needs."""

    def __init__(self, hop: Hop, state_dir: str, region: str, keep_warm_s: float,
                 budget: MemoryBudget, cgroups: Instance | None = None,
                 cpu_limits: str = "proportional", memory_limits: bool = True,
                 spare_workers: bool = True, sandbox: bool = True,
                 denied: Sequence[str] = (), environment: Environment | None = None) -> None:
        self._hop = hop
        self.lock = hop.lock
        self.cgroups = cgroups
        self.alarm = Alarm()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.alarm.fd, selectors.EVENT_READ, None)
        self.templates = Templates(hop, self.alarm, self._selector, state_dir, region,
                                   sandbox, denied, environment)
        self._warned: set[str] = set()
        self.budget = budget
        self.workers = Workers(hop, self.alarm, self.templates, self.budget,
                               int(keep_warm_s * 1e9), cgroups, cpu_limits, memory_limits,
                               spare_workers)
        self.pools: dict[str, FunctionPool] = {}
        self._stopping = False
        self._watching_replies = False
        self._thread = threading.Thread(target=self._run, name="fastinvoke-supervisor",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- pools (lock held but ``check``) ---------------------------------------------------

    def check(self, config: FunctionConfig) -> None:
        """Any function may be created here: one larger than the memory budget is refused
        when invoked, with what to change (``Admission.admit``)."""

    def placement(self, pool: FunctionPool) -> dict[str, int]:
        return {"local": len(pool.workers)}

    def add(self, pool: FunctionPool) -> None:
        """Take ``pool`` under supervision and start its Init."""
        self.pools[pool.name] = pool
        self.templates.boot(pool)

    def remove(self, pool: FunctionPool) -> None:
        """Stop ``pool``'s template and workers."""
        self.pools.pop(pool.name, None)
        pool.deleted = True
        # Its workers first: what they were sent ahead goes back to the queue, failed next.
        self.workers.crash_all(pool, "the function was deleted")
        fail_queue(self._hop, pool, "Runtime.ExitError", "the function was deleted")
        self.templates.close_all(pool)

    def renew(self, pool: FunctionPool) -> None:
        """New execution environments for ``pool``'s changed configuration.

        Init runs again in a new template, and invocations from now on wait for it; the
        current workers finish what they run and are then stopped, and their template
        ends with the last of them.
        """
        self.templates.retire(pool)
        self.workers.stop_idle_of(pool)
        self.templates.end_retired(pool)
        self.templates.boot(pool)

    # -- the thread -------------------------------------------------------------------------

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
        self.workers.remove_dead_groups()
        self.templates.spawn_pending()
        with self.lock:
            for key, _ in events:
                if key.data is None:
                    self.alarm.clear()
                elif key.data is _REPLIES:
                    self._hop.clear_wake_up()
                else:
                    self._on_template(key.fd, *key.data)
            self._hop.collect()
            now = monotonic_ns()
            self.workers.expire(now)
            self.templates.expire_init(self.pools.values(), now)
            self.workers.stop_idle(now)

    def _plan(self) -> float | None:
        """When to wake next: the nearest deadline or keep-warm expiry (lock held).

        Also watch the workers' replies while Event invocations are outstanding: nobody
        else reads their replies (or the Hello of the worker forked for them)."""
        hop = self._hop
        watch = hop.unattended > 0 and not hop.replies_read_elsewhere
        if watch != self._watching_replies:
            if watch:
                self._selector.register(hop.fd, selectors.EVENT_READ, _REPLIES)
                hop.bell.raise_()
            else:
                self._selector.unregister(hop.fd)
                hop.bell.lower()
            self._watching_replies = watch
        # Never sleep longer than the shortest function timeout: then a new invocation's
        # deadline is never earlier than the planned wake-up, and sending it need not
        # wake this thread (which would cost the caller a thread switch on every call).
        now = monotonic_ns()
        wake_at = now + _MAX_SLEEP_NS
        deadline = hop.core.next_deadline()
        if 0 <= deadline < wake_at:
            wake_at = deadline
        wake_at = self.workers.next_idle_expiry(wake_at)
        for pool in self.pools.values():
            if pool.state == "booting":
                wake_at = min(wake_at, pool.init_deadline_ns)
            elif pool.renew_at_ns:
                if now >= pool.renew_at_ns:  # its credentials near their expiry
                    pool.renew_at_ns = 0
                    self.renew(pool)
                    wake_at = min(wake_at, pool.init_deadline_ns)
                else:
                    wake_at = min(wake_at, pool.renew_at_ns)
        self.alarm.wake_at_ns = wake_at
        if watch and hop.replies_waiting():
            return 0.0  # the last look: a reply published before the doorbell rang
        return max(0.0, (wake_at - now) / 1e9)

    def _on_template(self, fd: int, pool: FunctionPool,
                     process: subprocess.Popen[bytes]) -> None:
        messages = self.templates.read(fd, pool, process)
        if messages is not None:
            for message in messages:
                self._on_template_message(pool, process, message)
        elif self.templates.ended(fd, pool, process):
            if pool.state == "dead":  # its workers died with it
                self.workers.crash_all(pool, exit_reason(-1, signal.SIGKILL))
                pool.starting = 0
            if not pool.deleted and not self._stopping:
                self.workers.grow(pool)

    def _on_template_message(self, pool: FunctionPool, process: subprocess.Popen[bytes],
                             message: Message) -> None:
        kind = type(message)
        if kind is wire.Exited:
            self.workers.exited(message, process.pid)
        elif kind is wire.Forked:
            self.workers.forked(message, process.pid,
                                self.templates.worker_pid(process, message.pid))
        elif kind is wire.Ready:
            self.templates.ready(pool, message)
            self.workers.grow(pool)
        elif kind is wire.InitFailed:
            pool.init_ns = message.init_ns
            self.templates.init_failed(pool, message.error)
        elif kind is wire.Unconfined:
            self._warn(f"functions are not fully isolated here: {message.reason}")
        elif kind is wire.ForkFailed:
            self.workers.fork_failed(message)
            self.workers.grow(pool)

    def _warn(self, text: str) -> None:
        """Say once (per Invoker) what this machine's sandbox lacks."""
        if text not in self._warned:
            self._warned.add(text)
            _log.warning("fastinvoke: %s", text)

    # -- shutdown ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every template and worker; fail what still waits.  Idempotent."""
        with self.lock:
            self._stopping = True
        self.alarm.ring()
        self._thread.join()

    def _shut_down(self) -> None:
        """The thread's last act.  It must be this thread: the templates' parent-death
        signal fires when the thread that started them ends, which would kill them before
        they could kill and reap their workers."""
        with self.lock:
            for pool in list(self.pools.values()):
                self.remove(pool)
            self.templates.clear_pending()
        self.templates.shut_down()
        self.workers.outputs.stop()
        if self.cgroups is not None:
            self.cgroups.remove()
        self._selector.close()
        self.alarm.close()
