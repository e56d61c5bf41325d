"""The dispatcher: routes invocations to idle workers over one ZeroMQ ROUTER socket.

Bookkeeping (idle stacks, the table of requests in flight, deadlines) lives in
``_core.Dispatcher``; this module owns the socket and the waiting.

Threads and the socket.  A ZeroMQ socket must be used by one thread at a time, so every
operation on the ROUTER happens under ``lock``.  Its ``FD`` is edge-triggered: any
operation may consume the notification of messages that have arrived, so whoever holds
the lock drains every pending message before releasing it (``_drain``).  Hence, with the
lock free, either nothing is pending or the FD will signal.

Waiting (leader/follower).  A synchronous caller does not hand its request to a
dispatcher thread, which would add two thread wake-ups to every call: it sends it
itself, and then at most one waiting thread, the *reader*, polls the FD and completes
whatever arrives; the others sleep on their own lock until their invocation completes or
the reader hands them the reading role.  An asyncio loop with invocations outstanding
watches the FD itself (``add_reader``).  So a lone caller pays for its own round trip and
nothing else.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from . import channel, wire
from ._core import Dispatcher as CoreDispatcher
from ._core import monotonic_ns

if TYPE_CHECKING:
    from .logs import InvocationLog
    from .pool.supervisor import Supervisor
    from .pool.workers import FunctionPool

_SNDMORE = channel.SNDMORE
_DONTWAIT = channel.DONTWAIT


class Invocation:
    """One invocation, from submission to its result.

    Completion sets ``done`` under the dispatcher's lock, after the result fields; the
    waiter is then woken exactly once, in the way it waits (``sem``, ``future`` or
    ``callback``).
    """

    __slots__ = (
        "request_id", "pool", "event", "timeout_ns", "invoked_arn", "client_context",
        "identity", "trace_id", "done", "payload", "error_type", "outcome", "log",
        "duration_ns", "max_rss_kb", "init_ns", "cold", "billed_ms", "log_entry",
        "sem", "waiting", "future", "loop", "loop_thread", "callback", "started_ns",
        "log_stream", "source",
    )

    def __init__(self, request_id: str, pool: FunctionPool, event: bytes,
                 invoked_arn: str, client_context: str | None = None) -> None:
        self.request_id = request_id
        self.pool = pool
        self.event = event
        self.timeout_ns = pool.config.timeout_s * 1_000_000_000
        self.invoked_arn = invoked_arn
        self.client_context = client_context
        self.identity: str | None = None
        self.trace_id: str | None = None
        self.done = False
        self.payload = b""
        self.error_type: str | None = None
        self.outcome = 0
        self.log = b""
        self.duration_ns = 0
        self.max_rss_kb = 0
        self.init_ns = 0
        self.cold = False
        self.billed_ms = 0
        self.log_entry: InvocationLog | None = None
        self.sem: threading.Lock | None = None
        self.waiting = False
        self.future: asyncio.Future[Invocation] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = 0
        self.callback: Callable[[Invocation], None] | None = None
        self.started_ns = 0
        self.log_stream = pool.init_stream
        self.source: Any = None  # what the submitter keeps with it (the queued Event)


class Dispatcher:
    """The front-end's end of the worker channel.  See the module docstring."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context(1)
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a dead worker's id raises, not drops
        self.router.setsockopt(zmq.SNDHWM, 0)
        self.router.setsockopt(zmq.RCVHWM, 0)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(endpoint)
        self.endpoint = endpoint
        self.fd: int = self.router.getsockopt(zmq.FD)
        self.channel = channel.open_channel(self.router)
        self.lock = threading.Lock()
        self.core = CoreDispatcher()
        self.supervisor: Supervisor  # set by the supervisor, which needs us too
        self.account: Callable[[Invocation], None] = _ignore  # meters and logs a finished one
        self.admit: Callable[[Invocation], None] = _ignore  # raises to throttle a new one
        # Invocations submitted and not complete, of functions without reserved concurrency.
        self.active_unreserved = 0
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
        # Invocations nobody waits for (Event): while there are any, the supervisor
        # thread reads the socket too, since no caller will.
        self.unattended = 0
        # Set when queued Events wait for concurrency: the next invocation to end calls
        # ``on_capacity`` (lock held) to start them.
        self.wants_capacity = False
        self.on_capacity: Callable[[], None] = _nothing

    # -- submitting (lock held in the underscored methods) --------------------------------

    def submit(self, invocation: Invocation) -> None:
        """Send ``invocation`` to an idle worker, or queue it for one.  ``admit`` may
        refuse it first (a throttle, raised to the caller)."""
        with self.lock:
            self.admit(invocation)
            self.enqueue(invocation)
            self._drain()

    def enqueue(self, invocation: Invocation) -> None:
        """Send ``invocation`` to an idle worker or queue it, admitted already (lock held;
        the caller drains the socket before releasing the lock)."""
        invocation.pool.active += 1
        if invocation.pool.config.reserved_concurrency is None:
            self.active_unreserved += 1
        if invocation.callback is not None:
            self.unattended += 1
            if self.unattended == 1:
                self.supervisor.wake()
        self._route(invocation)

    def _route(self, invocation: Invocation) -> None:
        pool = invocation.pool
        worker = self.core.pop_idle(pool.name)
        if worker is None:
            pool.queue.append(invocation)
            self.supervisor.grow(pool)
        else:
            self._send(worker, invocation)

    def _send(self, worker: bytes, invocation: Invocation) -> None:
        now = monotonic_ns()
        deadline_ns = now + invocation.timeout_ns
        invocation.started_ns = now
        event = invocation.event
        message = wire.encode_header(wire.Invoke(
            invocation.request_id,
            (time.time_ns() + invocation.timeout_ns) // 1_000_000,
            invocation.invoked_arn,
            event,
            invocation.client_context,
            invocation.identity,
            invocation.trace_id,
        ))
        self.core.begin(invocation.request_id, worker, deadline_ns, invocation)
        send = self.channel.send
        try:
            send(worker, _SNDMORE)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            # The worker vanished before the supervisor heard of it: try another one.
            self.core.drop_worker(worker)
            self.supervisor.lost(worker)
            self._route(invocation)
            return
        send(message)
        invocation.pool.meter.began()
        if deadline_ns < self.supervisor.wake_at_ns:
            self.supervisor.wake()

    def send_stop(self, worker: bytes) -> None:
        """Ask an idle worker to exit (lock held)."""
        try:
            self.channel.send(worker, _SNDMORE)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            return
        self.channel.send(wire.encode_header(wire.Stop()))

    def dispatch_queued(self, pool: FunctionPool) -> None:
        """Give queued invocations of ``pool`` to its idle workers (lock held)."""
        queue, pop_idle = pool.queue, self.core.pop_idle
        while queue:
            worker = pop_idle(pool.name)
            if worker is None:
                return
            self._send(worker, queue.popleft())

    # -- receiving (lock held) ------------------------------------------------------------

    def _drain(self) -> None:
        readable, recv = self.channel.readable, self.channel.recv
        while readable():
            worker = recv(_DONTWAIT)
            try:
                message = wire.decode_from_worker(recv(_DONTWAIT))
            except (ValueError, zmq.ZMQError):
                while self.router.get(zmq.RCVMORE):  # not one of ours: drop it whole
                    recv(_DONTWAIT)
                continue
            if type(message) is wire.Reply:
                self._on_reply(worker, message)
            else:
                self._on_hello(worker, message)

    def _on_reply(self, worker: bytes, reply: wire.Reply) -> None:
        invocation = self.core.finish(reply.request_id, worker)
        if invocation is None:
            return  # timed out already, or its worker was killed: nobody waits for it
        pool = invocation.pool
        record = pool.workers.get(worker)
        invocation.payload = reply.payload
        invocation.log = reply.log
        invocation.error_type = reply.error_type
        invocation.outcome = 0 if reply.error_type is None else 1
        invocation.duration_ns = reply.duration_ns
        invocation.max_rss_kb = reply.max_rss_kb
        if record is not None:
            invocation.log_stream = record.log_stream
            if record.provisioned:
                pool.meter.served_provisioned()
            if record.cold:
                record.cold = False
                invocation.cold = True
                invocation.init_ns = record.init_ns
            elif reply.init_ns:  # its runtime had ended; Init ran again within this call
                invocation.cold = True
                invocation.init_ns = reply.init_ns
            if (reply.retire or record.generation != pool.generation
                    or (self.supervisor.budget.starved and not pool.queue
                        and self.supervisor.budget.wants_room(pool))):
                # Asked to; or its configuration changed; or its memory is wanted elsewhere.
                self.supervisor.stop_worker(record)
            else:
                record.state = "idle"
                record.log_offset = reply.log_offset
                record.last_used_ns = monotonic_ns()
        self.complete(invocation)  # first: it ends this one's concurrency before the next
        if pool.queue:
            self.dispatch_queued(pool)

    def _on_hello(self, worker: bytes, hello: wire.Hello) -> None:
        record = self.supervisor.worker_ready(worker, hello)
        if record is None:
            self.send_stop(worker)
            return
        self.core.add_worker(worker, record.pool.name)
        self.dispatch_queued(record.pool)

    def complete(self, invocation: Invocation) -> None:
        """Account for a finished invocation and wake whoever waits for it (lock held)."""
        invocation.pool.active -= 1
        if invocation.pool.config.reserved_concurrency is None:
            self.active_unreserved -= 1
        self.account(invocation)
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
                invocation.loop.call_soon_threadsafe(_resolve, invocation)
        elif invocation.callback is not None:
            self.unattended -= 1
            invocation.callback(invocation)
        if self.wants_capacity:
            self.on_capacity()

    # -- waiting --------------------------------------------------------------------------

    def wait(self, invocation: Invocation) -> None:
        """Block until ``invocation`` is done (any thread)."""
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
                events = poll()
                with lock:
                    for fd, _ in events:
                        if fd == wake_fd:
                            os.eventfd_read(wake_fd)
                    self._drain()
                    if invocation.done:
                        return
        finally:
            with lock:
                self._reader = None
                self._hand_off()

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
        """Have ``loop`` read the socket (its thread), until as many ``unwatch`` calls."""
        watchers = self._loops.get(loop, 0)
        if watchers == 0:
            loop.add_reader(self.fd, self._pump)
        self._loops[loop] = watchers + 1

    def unwatch(self, loop: asyncio.AbstractEventLoop) -> None:
        watchers = self._loops.pop(loop) - 1
        if watchers:
            self._loops[loop] = watchers
        else:
            loop.remove_reader(self.fd)

    def _pump(self) -> None:
        with self.lock:
            self._drain()

    def close(self) -> None:
        self.router.close(0)
        self.context.term()
        os.close(self._wake_fd)


def _ignore(invocation: Invocation) -> None:
    pass


def _nothing() -> None:
    pass


def _resolve(invocation: Invocation) -> None:
    future = invocation.future
    if not future.done():
        future.set_result(invocation)
