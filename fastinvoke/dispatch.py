"""The dispatcher: routes invocations to idle workers over their shared-memory links.

Bookkeeping (idle stacks, the table of requests in flight, deadlines) lives in
``_core.Dispatcher``; the links themselves in ``_core.Link`` (a request slot and a reply
ring in shared memory per worker).  This module owns the links and the waiting; what a
busy worker is sent ahead of need is ``pool.ahead``'s.

Wake-ups.  A worker that publishes a reply (or its Hello) writes the dispatcher's one
eventfd (``fd``) while the doorbell (``bell``) counts a waiter, so one poll, or one asyncio
reader, waits for all of them.  A waiter raises the doorbell, takes a last look at the
lanes, sleeps, and lowers it once awake; then, holding ``lock``, it takes every reply
waiting (``collect``).  While nobody sleeps (callers spinning or busy) a reply costs no
system call.

Waiting (leader/follower).  A synchronous caller does not hand its request to a
dispatcher thread, which would add two thread wake-ups to every call: it sends it
itself, and then at most one waiting thread, the *reader*, waits for the eventfd and
completes whatever arrives; the others sleep on their own lock until their invocation
completes or the reader hands them the reading role.  A reader alone (no follower) first
spins briefly on the reply lanes when that function's replies have lately come within
microseconds: then a round trip costs no system call.  An asyncio loop with
invocations outstanding watches the eventfd itself (``add_reader``).  So a lone caller
pays for its own round trip and nothing else.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import wire
from ._core import Dispatcher as CoreDispatcher
from ._core import Doorbell, Link, lane_file, monotonic_ns, ready_links, spin_any
from .pool.ahead import Ahead
from .pool.failures import take_cold_start
from .pool.output import take
from .pool.records import Batch, FunctionPool, Invocation

if TYPE_CHECKING:
    from .admission import Admission
    from .cluster.slots import Slots
    from .pool.alarm import Alarm
    from .pool.hop import RemoteAnswers, RemoteLink
    from .pool.lifecycle import Workers

# A lone waiting caller spins on its worker's reply for up to twice the function's recent
# round trip, when that is below this; longer round trips are waited for asleep.
MAX_CALLER_SPIN_NS = 100_000
_STOP = wire.encode_header(wire.Stop())
_CPUS = len(os.sched_getaffinity(0))


class Dispatcher:
    """The front-end's end of the worker links.  See the module docstring.

    ``admission`` counts every function's concurrency and may refuse a new invocation (it
    raises a throttle); ``account`` meters and logs a finished one; both are called with
    the lock held.  The pool's ``Workers`` and its supervisor's ``Alarm`` come with
    ``attach``: they are made with this dispatcher, which they need too."""

    def __init__(self, admission: Admission, account: Callable[[Invocation], None],
                 cpus: float | None = None) -> None:
        """``cpus``: the cores its workers run on (None: this machine's); a worker
        spins for its next request, and a caller for its answer, only while fewer
        workers than that are busy."""
        self.cpus = _CPUS if cpus is None else min(cpus, _CPUS)
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # every worker writes it
        self.bell = Doorbell()
        self.links: dict[bytes, Link | RemoteLink] = {}
        self._link_list: list[Link] = []
        self.lock = threading.Lock()
        self.core = CoreDispatcher()
        # Invocations in flight whose response may come in parts (``Invocation.on_chunk``).
        self._streams: dict[str, Invocation] = {}
        self.admission = admission
        self.account = account
        self.workers: Workers | Slots
        self.alarm: Alarm
        self._reader: Invocation | None = None
        self._reader_thread = 0
        # Waiting threads in arrival order; an entry leaves as soon as its invocation
        # completes, so a long-running reader never makes them pile up.
        self._followers: dict[Invocation, None] = {}
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poller = select.poll()
        self._poller.register(self.fd, select.POLLIN)
        self._poller.register(self._wake_fd, select.POLLIN)
        self._loops: dict[asyncio.AbstractEventLoop, int] = {}
        # Invocations ended on another thread, by loop: resolved in one call on it.
        self._to_resolve: dict[asyncio.AbstractEventLoop, list[Invocation]] = {}
        # Invocations nobody waits for (Event): while there are any, the supervisor
        # thread reads the replies too, since no caller will; unless a loop of the
        # dispatcher's owner always reads them (a Ray node's engine).
        self.unattended = 0
        self.replies_read_elsewhere = False
        self.remote_answers: RemoteAnswers | None = None  # a Ray cluster's, lent to loops
        self._ahead = Ahead()  # invocations sent to busy workers ahead of need
        self._capacity_waiter: Callable[[], None] | None = None

    def attach(self, workers: Workers | Slots, alarm: Alarm) -> None:
        """Take the pool's workers (they fork and stop workers) and the alarm that wakes
        the supervisor thread."""
        self.workers = workers
        self.alarm = alarm

    def when_capacity(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, lock held, when the next invocation ends (queued Event
        invocations waiting for concurrency)."""
        self._capacity_waiter = callback

    # -- submitting (lock held in the underscored methods) --------------------------------

    def submit(self, invocation: Invocation) -> None:
        """Send ``invocation`` to an idle worker, or queue it for one.  Admission may
        refuse it first (a throttle, raised to the caller)."""
        with self.lock:
            self.admission.admit(invocation)
            self.enqueue(invocation)

    def submit_batch(self, batch: Batch, width_of: Callable[[], int]) -> None:
        """Start ``batch``: admit its first invocation (which may raise a throttle, before
        anything runs), then send up to ``width_of()`` (called under the lock) at once."""
        with self.lock:
            batch.width = width = width_of()
            pending = batch.pending
            self.admission.admit(pending[0])
            self.enqueue(pending.popleft())
            for _ in range(1, width):
                if not pending:
                    break
                self.enqueue(pending.popleft())

    def enqueue(self, invocation: Invocation) -> None:
        """Send ``invocation`` to an idle worker or queue it, admitted already (lock held)."""
        self.admission.enter(invocation.pool)
        if invocation.callback is not None:
            self.unattended += 1
            if self.unattended == 1 and not self.replies_read_elsewhere:
                self.alarm.ring()
        self._route(invocation)

    def _route(self, invocation: Invocation) -> None:
        pool = invocation.pool
        worker = self.core.pop_idle(pool.name)
        if worker is None:
            pool.queue.append(invocation)
            busy = self._ahead.free_worker(pool) if self._ahead.lane_free else None
            if busy is None or not self._send_ahead(busy, pool):
                self.workers.grow(pool)
        else:
            self._send(worker, invocation)
            if not self.core.has_idle(pool.name):
                self.workers.keep_spare(pool)  # the next one must not wait for a fork

    def _send(self, worker: bytes, invocation: Invocation) -> None:
        """Send ``invocation`` to idle ``worker``: alone, or first of a batch of those
        waiting behind it (``pool.ahead``)."""
        pool = invocation.pool
        count = (self._ahead.wanted(worker, pool)
                 if pool.queue and invocation.on_chunk is None else 0)
        ahead = self._ahead.take(pool, count) if count else []
        first = self._header(invocation, False)
        now = monotonic_ns()
        deadline_ns = self._deadline(invocation, now)
        self.core.begin(invocation.request_id, worker, deadline_ns, invocation)
        if invocation.on_chunk is not None:  # its response may be streamed
            self._streams[invocation.request_id] = invocation
        if ahead:
            self._send_batch(worker, invocation.request_id, [first], ahead)
        else:
            self._ahead.sent_one(worker)
            self.links[worker].send(wire.encode_header(first))
        self._began(invocation, now, deadline_ns)

    def _send_ahead(self, worker: bytes, pool: FunctionPool) -> bool:
        """Send busy ``worker``, whose request lane is free, a batch of ``pool``'s
        waiting invocations to begin after its own; whether any went."""
        record = pool.workers.get(worker)
        if record is None or record.generation != pool.generation:
            self._ahead.lane_free.pop(worker, None)  # it ends after what it has
            return False
        ahead = self._ahead.take(pool, self._ahead.wanted(worker, pool))
        if not ahead:
            return False
        self._send_batch(worker, ahead[0].request_id, [], ahead)
        return True

    def _send_batch(self, worker: bytes, head: str, headers: list[wire.Invoke],
                    ahead: list[Invocation]) -> None:
        """Send ``worker`` one message: ``headers`` (what it begins now, if anything),
        then ``ahead``, marked, to begin as each one before it replies; ``head`` is the
        message's first request."""
        self._ahead.sent(worker, head, ahead)
        headers += (self._header(each, True) for each in ahead)
        self.links[worker].send(wire.encode_header(wire.Batch(headers)))

    def _header(self, invocation: Invocation, marked: bool) -> wire.Invoke:
        return wire.Invoke(
            invocation.request_id,
            (time.time_ns() + invocation.timeout_ns) // 1_000_000,
            invocation.invoked_arn,
            invocation.event,
            invocation.client_context,
            invocation.identity,
            invocation.trace_id,
            self._worker_spin(invocation),
            invocation.on_chunk is not None,
            marked,
        )

    def _deadline(self, invocation: Invocation, now: int) -> int:
        return now + invocation.timeout_ns + self.workers.deadline_slack_ns

    def _began(self, invocation: Invocation, now: int, deadline_ns: int) -> None:
        """``invocation`` began on its worker at ``now`` (in the core already)."""
        invocation.started_ns = now
        invocation.pool.meter.began()
        if deadline_ns < self.alarm.wake_at_ns:
            self.alarm.ring()

    def send_stop(self, worker: bytes) -> None:
        """Ask an idle worker to exit (lock held)."""
        link = self.links.get(worker)
        if link is not None:
            link.send(_STOP)

    def resend(self, invocation: Invocation) -> None:
        """Route again an invocation whose worker ended before taking it (lock held)."""
        invocation.pool.meter.not_started()
        invocation.started_ns = 0
        self._route(invocation)

    # -- links (lock held) ----------------------------------------------------------------

    def open_link(self, worker: bytes) -> tuple[int, int, int, int, int]:
        """Make ``worker``'s link before it is forked; return the fds the worker needs:
        its request lane, its reply lane, its own eventfd, the dispatcher's eventfd and
        its doorbell."""
        requests = lane_file()
        replies = lane_file(ring=True)  # replies need not wait for each other
        wake = os.eventfd(0, os.EFD_CLOEXEC)
        link = Link(replies, requests, -1, wake, worker)
        self.links[worker] = link
        self._link_list.append(link)
        return requests, replies, wake, self.fd, self.bell.fd

    def add_link(self, worker: bytes, link: RemoteLink) -> None:
        """A link of another kind: a remote worker's, which only sends (its replies come
        by other means, and complete through ``complete``)."""
        self.links[worker] = link

    def delivered(self, worker: bytes, request_id: str | None = None) -> bool:
        """Whether ``worker`` took the last request sent to it (True without a link); or,
        given ``request_id`` that it was running, whether it took that one: only the
        first of the last batch it was sent may not have been."""
        if request_id is not None and self._ahead.head.get(worker, request_id) != request_id:
            return True
        link = self.links.get(worker)
        return link is None or link.delivered()

    def take_back(self, worker: bytes) -> None:
        """``worker`` ends: what it was sent ahead and did not begin waits again, first
        in its queue, for another (lock held)."""
        items = self._ahead.take_back(worker)
        if items:
            pool = items[0].pool
            pool.queue.extendleft(reversed(items))
            self.dispatch_queued(pool)
            if pool.queue:
                self.workers.grow(pool)

    def close_link(self, worker: bytes) -> None:
        self.take_back(worker)
        self._ahead.forget(worker)
        link = self.links.pop(worker, None)
        if type(link) is Link:
            self._link_list.remove(link)
            link.close()

    def dispatch_queued(self, pool: FunctionPool) -> None:
        """Give queued invocations of ``pool`` to its idle workers (lock held)."""
        queue, pop_idle = pool.queue, self.core.pop_idle
        while queue:
            worker = pop_idle(pool.name)
            if worker is None:
                return
            self._send(worker, queue.popleft())
            if not queue and not self.core.has_idle(pool.name):
                self.workers.keep_spare(pool)

    # -- receiving (lock held) ------------------------------------------------------------

    def collect(self) -> None:
        """Take every reply and Hello waiting in the links (lock held)."""
        decode = wire.decode_from_worker
        for link in ready_links(self._link_list):
            while (data := link.take()) is not None:  # a ring may hold several
                try:
                    message = decode(data)
                except ValueError:
                    continue  # not one of ours: dropped
                kind = type(message)
                if kind is wire.Reply:
                    self._on_reply(link.worker, message)
                elif kind is wire.Chunk:
                    self._on_chunk(link.worker, message)
                else:
                    self._on_hello(link.worker, message)

    def _on_reply(self, worker: bytes, reply: wire.Reply) -> None:
        # The worker goes on with what it was sent ahead, unless it retires (then it ran
        # none of it: ``take_back`` below).
        following = None if reply.retire else self._ahead.following(worker)
        if following is None:
            invocation = self.core.finish(reply.request_id, worker)
        else:
            now = monotonic_ns()
            deadline_ns = self._deadline(following, now)
            invocation = self.core.hand_over(reply.request_id, worker, following.request_id,
                                             deadline_ns, following)
        if invocation is None:
            return  # timed out already, or its worker was killed: nobody waits for it
        if following is not None:
            self._ahead.begun(worker)
        pool = invocation.pool
        record = pool.workers.get(worker)
        if not invocation.ahead:  # begun as the last replied: not a round trip
            round_trip = monotonic_ns() - invocation.started_ns
            pool.round_trip_ns = ((3 * pool.round_trip_ns + round_trip) >> 2
                                  if pool.round_trip_ns else round_trip)
        invocation.payload = reply.payload
        invocation.error_type = reply.error_type
        invocation.outcome = 0 if reply.error_type is None else 1
        invocation.duration_ns = reply.duration_ns
        invocation.max_rss_kb = reply.max_rss_kb
        if record is not None:
            # Printed before the reply: all in the pipe; up to the next one's mark when
            # that one may have begun meanwhile.
            invocation.log = take(record, following is not None)
            take_cold_start(record, invocation)
            if reply.init_ns and not invocation.cold:
                invocation.cold = True  # its runtime had ended; Init ran again in this call
                invocation.init_ns = reply.init_ns
            budget = self.workers.budget
            if following is not None:
                record.last_used_ns = monotonic_ns()  # it runs the next already
            elif (reply.retire or record.generation != pool.generation
                    or (budget.starved and not pool.queue and budget.wants_room(pool))):
                # Asked to; or its configuration changed; or its memory is wanted elsewhere.
                self.workers.stop(record)
                self.take_back(worker)  # not to it: it is no longer idle
            else:
                record.state = "idle"
                record.last_used_ns = monotonic_ns()
        self.complete(invocation)  # first: it ends this one's concurrency before the next
        if following is None:
            self._ahead.lane_free.pop(worker, None)
        else:
            self._began(following, now, deadline_ns)  # after: never two at once
            if self._ahead.head.get(worker) == reply.request_id:
                # It took the last batch it was sent (it answered that batch's first):
                # its lane is free for the next, which it will find as it ends this one.
                self._ahead.lane_free[worker] = pool
                if pool.queue:
                    self._send_ahead(worker, pool)
        if pool.queue:
            self.dispatch_queued(pool)

    def _on_chunk(self, worker: bytes, chunk: wire.Chunk) -> None:
        """A part of a streamed response: to whoever takes them, if it is in flight on
        that worker."""
        invocation = self._streams.get(chunk.request_id)
        if invocation is not None and self.core.busy_worker(chunk.request_id) == worker:
            invocation.on_chunk(chunk)  # type: ignore[misc]

    def _on_hello(self, worker: bytes, hello: wire.Hello) -> None:
        record = self.workers.ready(worker, hello)
        if record is None:
            self.send_stop(worker)
            return
        if hello.batches:
            self._ahead.capable.add(worker)
        self.core.add_worker(worker, record.pool.name)
        self.dispatch_queued(record.pool)

    def complete(self, invocation: Invocation) -> None:
        """Account for a finished invocation and wake whoever waits for it (lock held)."""
        if invocation.on_chunk is not None:
            self._streams.pop(invocation.request_id, None)
        self.admission.leave(invocation.pool)
        self.account(invocation)
        batch = invocation.batch
        if batch is None:
            self._wake(invocation)
        else:
            invocation.done = True
            batch.remaining -= 1
            if batch.pending:
                self.enqueue(batch.pending.popleft())
            elif batch.remaining == 0:
                self._wake(batch.sentinel)
        waiter = self._capacity_waiter
        if waiter is not None:
            self._capacity_waiter = None
            waiter()

    def _wake(self, invocation: Invocation) -> None:
        """Mark ``invocation`` done and wake its waiter, in the way it waits (lock held)."""
        invocation.done = True
        if invocation is self._reader:
            if self._reader_thread != threading.get_ident():
                os.eventfd_write(self._wake_fd, 1)
        elif invocation.waiting:
            invocation.waiting = False
            del self._followers[invocation]
            invocation.sem.release()
        elif invocation.future is not None:
            if invocation.loop_thread == threading.get_ident():
                _resolve(invocation)
            else:
                self._resolve_on_loop(invocation)
        elif invocation.callback is not None:
            self.unattended -= 1
            invocation.callback(invocation)

    def _resolve_on_loop(self, invocation: Invocation) -> None:
        """Have ``invocation``'s loop resolve its future, from another thread (lock
        held): one wake-up of the loop for all the invocations that end before it runs."""
        loop = invocation.loop
        pending = self._to_resolve.get(loop)
        if pending is None:
            loop.call_soon_threadsafe(self._resolve_pending, loop)
            pending = self._to_resolve[loop] = []
        pending.append(invocation)

    def _resolve_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:
            pending = self._to_resolve.pop(loop)
        for invocation in pending:
            _resolve(invocation)

    # -- waiting --------------------------------------------------------------------------

    def wait(self, invocation: Invocation) -> None:
        """Block until ``invocation`` is done (any thread)."""
        if self.remote_answers is not None:
            self.remote_answers.leave_thread()
        lock = self.lock
        sem = None
        while True:
            with lock:
                if invocation.done:
                    return
                if self._reader is None:
                    self._reader = invocation
                    self._reader_thread = threading.get_ident()
                else:
                    if sem is None:
                        invocation.sem = sem = threading.Lock()
                        sem.acquire()
                    invocation.waiting = True
                    self._followers[invocation] = None
            if self._reader is invocation:
                self._read_until(invocation)
                return
            try:
                sem.acquire()
            except BaseException:
                with lock:
                    if invocation.waiting:
                        invocation.waiting = False
                        del self._followers[invocation]
                    elif self._reader is None:
                        self._hand_off()
                raise

    def _read_until(self, invocation: Invocation) -> None:
        lock, poll, wake_fd = self.lock, self._poller.poll, self._wake_fd
        try:
            while True:
                if self._followers or not spin_any(self._link_list, self._spin_ns(invocation)):
                    self.bell.raise_()
                    try:
                        if not self.replies_waiting():  # the last look
                            for fd, _ in poll():
                                if fd == wake_fd:
                                    os.eventfd_read(wake_fd)
                                else:
                                    self.clear_wake_up()
                    finally:
                        self.bell.lower()
                with lock:
                    self.collect()
                    if invocation.done:
                        return
        finally:
            with lock:
                self._reader = None
                self._hand_off()

    def spin_for_reply(self, spin_ns: int) -> bool:
        """Spin up to ``spin_ns`` (GIL released) until a reply waits in a lane; whether
        one does.  For a loop that reads every reply (a Ray node's) and would otherwise
        sleep until the worker's wake-up."""
        return spin_any(self._link_list, spin_ns)

    def replies_waiting(self) -> bool:
        """Whether a reply waits in a lane: a waiter's last look after raising the doorbell
        (a reply published before that woke nobody).  Any thread."""
        return bool(ready_links(self._link_list))

    def clear_wake_up(self) -> None:
        """Consume the eventfd's count (a waiter that woke on it; any thread)."""
        try:  # noqa: SIM105 - on every wake-up: suppress() would add a context manager
            os.eventfd_read(self.fd)
        except BlockingIOError:
            pass  # another waiter took it

    def _spin_ns(self, invocation: Invocation) -> int:
        """How long a lone waiting caller spins: twice the function's recent round trip,
        when that is short and a core is spare beside the workers kept busy."""
        average = invocation.pool.round_trip_ns or MAX_CALLER_SPIN_NS
        if average >= MAX_CALLER_SPIN_NS or self._busy_workers(invocation) >= self.cpus:
            return 0
        return 2 * average

    def _worker_spin(self, invocation: Invocation) -> int:
        """How the worker sent ``invocation`` waits for its next request after replying."""
        if self._busy_workers(invocation) >= self.cpus:  # with the front-end, one too many
            return wire.SPIN_NEVER
        batch = invocation.batch
        if invocation.pool.queue or (batch is not None and batch.pending):
            return wire.SPIN_BUSY
        return wire.SPIN_ADAPTIVE

    def _busy_workers(self, invocation: Invocation) -> int:
        """Workers running now, or about to: a batch keeps ``width`` of them busy while it
        has invocations to send (between one's reply and the next's send, fewer run)."""
        batch = invocation.batch
        width = batch.width if batch is not None and batch.pending else 0
        return max(self.core.in_flight, width)

    def _hand_off(self) -> None:
        """Pass the reader's role to a thread still waiting (lock held)."""
        for follower in self._followers:
            del self._followers[follower]
            follower.waiting = False
            follower.sem.release()
            return

    async def wait_async(self, invocation: Invocation) -> Invocation:
        """Await ``invocation`` (its ``future`` was set before it was submitted)."""
        loop = invocation.loop
        self.watch(loop)
        try:
            return await invocation.future
        finally:
            self.unwatch(loop)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have ``loop`` read the replies, and a cluster's answers (``remote_answers``),
        until as many ``unwatch`` calls (its thread)."""
        watchers = self._loops.get(loop, 0)
        if watchers == 0:
            self.bell.raise_()  # a loop cannot spin: it needs every reply's wake-up
            loop.add_reader(self.fd, self._pump)
            if self.replies_waiting():  # published before the bell rang: nobody was woken
                loop.call_soon(self._pump)
            if self.remote_answers is not None:
                self.remote_answers.lend(loop)
        self._loops[loop] = watchers + 1

    def unwatch(self, loop: asyncio.AbstractEventLoop) -> None:
        watchers = self._loops.pop(loop) - 1
        if watchers:
            self._loops[loop] = watchers
        else:
            loop.remove_reader(self.fd)
            self.bell.lower()
            if self.remote_answers is not None:
                self.remote_answers.take_back(loop)

    def _pump(self) -> None:
        self.clear_wake_up()
        with self.lock:
            self.collect()

    def close(self) -> None:
        for link in self._link_list:
            link.close()
        self.links.clear()
        self._link_list.clear()
        self.bell.close()
        os.close(self.fd)
        os.close(self._wake_fd)


def _resolve(invocation: Invocation) -> None:
    future = invocation.future
    if not future.done():
        future.set_result(invocation)
