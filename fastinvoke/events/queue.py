"""Lambda's asynchronous invocation: accepted events, run later, retried, delivered.

Each function has a *lane*: events ``ready`` (persisted, waiting), events ``claimed``
(their attempt counted in the store, about to run) and how many are ``running``.  Events
run only while the function has concurrency to spare (its reserved concurrency, or what
the account leaves unreserved), so a flood of events never throttles anyone's
synchronous calls beyond what Lambda would, and one function's backlog waits in its own
lane instead of in front of another's.

Threads.  Callers accept events (``accept``; the store commits them in groups).  One
thread, the *pump*, does everything slow: claims events from the store in batches, writes
retries and deletions, delivers records to destinations.  Starting an event is cheap and
happens inline, under the dispatcher's lock: when an attempt ends, the next claimed event
of its lane starts in the same breath, without waking any thread.

Failure policy (docs/lambda-behaviour.md, "Asynchronous invocation").  A function error,
timeout or crash is retried up to the lane's ``maximum_retry_attempts`` after the
configured delays (Lambda: about 1 and 2 minutes), with the same request id.  An event
older than ``maximum_event_age_s`` is not run again: it goes to the failure destination
as ``EventAgeExceeded``.  Reserved concurrency 0 sends events straight there as
``ZeroReservedConcurrency``.  Waiting for concurrency is not a failure: the event stays
queued.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..dispatch import Dispatcher
from ..errors import ServiceException
from ..pool.records import Invocation
from . import records
from .config import EventInvokeConfig
from .store import MemoryEventStore, QueuedEvent

if TYPE_CHECKING:
    from ..pool.records import FunctionPool

_BUFFER = 256  # claimed events a lane keeps ready to start; refilled when below half
_FLUSH_MS = 50  # a finished event's row is deleted within this long (or 1,000 at once)
_FLUSH_COUNT = 1000
_log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Lane:
    """The events of one function, version or alias (``key``: ``name``, ``name:3``,
    ``name:live``).  An alias's lane runs each event on the version the alias picks then
    (``route``); ``pool`` is its function's, for its concurrency."""

    __slots__ = ("pool", "arn", "key", "route", "config", "ready", "claimed", "running",
                 "in_transit")

    def __init__(self, pool: FunctionPool, arn: str, key: str | None = None,
                 route: Callable[[], FunctionPool] | None = None) -> None:
        self.pool = pool
        self.arn = arn
        self.key = key or pool.name
        self.route = route
        self.config = EventInvokeConfig()
        self.ready: deque[QueuedEvent] = deque()
        self.claimed: deque[QueuedEvent] = deque()
        self.running = 0
        # With the pump, between two of its locked moments: being claimed or delivered.
        self.in_transit = 0

    @property
    def dead_letter(self) -> str | None:
        return self.pool.config.dead_letter_target  # (updates change the config in place)


class EventQueue:
    """Event invocations of every function of one Invoker.  See the module docstring.

    ``capacity(pool)`` says how many more invocations ``pool`` may run now (dispatcher
    lock held); ``deliver(lane, event, condition)`` sends a finished event's record to
    its destinations (pump thread, no lock)."""

    def __init__(self, dispatcher: Dispatcher, store: MemoryEventStore,
                 capacity: Callable[[FunctionPool], int],
                 deliver: Callable[[Lane, QueuedEvent, str], None],
                 retry_delays_s: tuple[float, ...]) -> None:
        self.store = store
        self.lock = dispatcher.lock
        self._dispatcher = dispatcher
        self._capacity = capacity
        self._deliver = deliver
        self._delays_ms = tuple(int(delay * 1000) for delay in retry_delays_s)
        self._wake = threading.Condition(self.lock)
        self._settled = threading.Condition(self.lock)  # a lane ran out of work
        self._lanes: dict[str, Lane] = {}
        self._orphans: dict[str, list[QueuedEvent]] = {}  # recovered; function not back yet
        self._delayed: list[tuple[int, int, QueuedEvent]] = []  # heap: (due_ms, seq, event)
        self._finished: list[tuple[QueuedEvent, str, Lane]] = []  # to deliver, then delete
        self._done: list[int] = []
        self._retried: list[QueuedEvent] = []
        self._flush_at_ms = 0
        self._running = 0
        self._stopping = False
        self._stop_by_ms = 0
        self._loop_batches: dict[asyncio.AbstractEventLoop, tuple[list[QueuedEvent],
                                                                   asyncio.Future[None]]] = {}
        self.recovered = self.redelivered = self.delivery_failures = 0
        recovered, self.redelivered = store.recover()
        self.recovered = len(recovered)
        # For ``stats``' "resumable": per function, the recovered events' ages when they
        # may start at the earliest (now, or when their retry is due), sorted.
        now, ages = _now_ms(), {}
        for event in recovered:
            ages.setdefault(event.function, []).append(max(now, event.due_ms) - event.enqueued_ms)
        self._recovered_ages: dict[str, list[int]] = {
            function: sorted(found) for function, found in ages.items()}
        for event in recovered:
            if event.due_ms:
                heapq.heappush(self._delayed, (event.due_ms, event.seq, event))
            else:
                self._orphans.setdefault(event.function, []).append(event)
        self._thread = threading.Thread(target=self._run, name="fastinvoke-events",
                                        daemon=True)
        self._thread.start()

    # -- functions (lock held) -------------------------------------------------------------

    def add_function(self, pool: FunctionPool, arn: str, key: str | None = None,
                     route: Callable[[], FunctionPool] | None = None) -> Lane:
        """A lane for ``pool``'s events, or with ``key`` and ``route`` for an alias's."""
        lane = Lane(pool, arn, key, route)
        self._lanes[lane.key] = lane
        lane.ready.extend(self._orphans.pop(lane.key, ()))
        if lane.ready:
            self._wake.notify()
        return lane

    def remove_function(self, name: str) -> None:
        """The function (version, alias) is deleted: Lambda drops its queued events; so
        do we."""
        lane = self._lanes.pop(name, None)
        if lane is not None:
            for event in (*lane.claimed, *lane.ready):
                self._delete(event.seq)

    def lane(self, name: str) -> Lane:
        return self._lanes[name]

    # -- accepting (any thread) ------------------------------------------------------------

    def accept(self, key: str, request_id: str, payload: bytes) -> None:
        """Persist an event for the lane ``key`` (returns once it is committed) and queue
        it."""
        self._queue([QueuedEvent(request_id, key, payload, _now_ms())])

    async def accept_async(self, key: str, request_id: str, payload: bytes) -> None:
        """``accept`` for asyncio: the events a loop accepts in one iteration are committed
        together, at the end of it."""
        loop = asyncio.get_running_loop()
        batch = self._loop_batches.get(loop)
        if batch is None:
            batch = self._loop_batches[loop] = ([], loop.create_future())
            loop.call_soon(self._commit_loop_batch, loop)
        batch[0].append(QueuedEvent(request_id, key, payload, _now_ms()))
        await asyncio.shield(batch[1])

    def _commit_loop_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        events, committed = self._loop_batches.pop(loop)
        try:
            self._queue(events)
        except Exception as exc:
            committed.set_exception(exc)
        else:
            committed.set_result(None)

    def _queue(self, events: list[QueuedEvent]) -> None:
        try:
            self.store.add(events)
        except sqlite3.Error as exc:
            raise ServiceException(
                f"The event could not be queued: {exc}. Check that the state directory's "
                "disk has room and that no other program holds events.db, then retry.") from exc
        with self.lock:
            for event in events:
                lane = self._lanes.get(event.function)
                if lane is None:  # deleted meanwhile: dropped with its function's events
                    self._delete(event.seq)
                else:
                    lane.ready.append(event)
            self._wake.notify()

    # -- starting and finishing attempts (lock held) ---------------------------------------

    def concurrency_changed(self, pool: FunctionPool) -> None:
        """``pool``'s reserved concurrency changed (lock held): the claimed events of its
        lanes (its versions' and aliases' too) may start, or, at 0, may never run."""
        for lane in list(self._lanes.values()):
            if lane.pool.head is pool:
                self._start(lane)

    def _start(self, lane: Lane) -> None:
        """Start ``lane``'s claimed events while its function has concurrency to spare."""
        claimed = lane.claimed
        if claimed and lane.pool.head.config.reserved_concurrency == 0:
            while claimed:  # claimed before the reservation went to 0: they never run
                event = claimed.popleft()
                event.attempts -= 1  # counted when claimed, never started
                self._finish(event, records.ZERO_RESERVED_CONCURRENCY)
        room = self._capacity(lane.pool)
        if claimed and room > 0:
            now, max_age = _now_ms(), lane.config.max_age_ms
            enqueue, done = self._dispatcher.enqueue, self._on_done
            while claimed and room > 0:
                event = claimed.popleft()
                if now - event.enqueued_ms >= max_age:
                    event.attempts -= 1  # counted when claimed, never started
                    self._finish(event, records.EVENT_AGE_EXCEEDED)
                    continue
                pool = lane.pool if lane.route is None else lane.route()
                invocation = Invocation(event.request_id, pool, event.payload, lane.arn)
                invocation.callback = done
                invocation.source = event
                lane.running += 1
                self._running += 1
                enqueue(invocation)
                room -= 1
        if claimed and room <= 0:
            self._dispatcher.when_capacity(self._on_capacity)
        if len(claimed) < _BUFFER // 2 and lane.ready:
            self._wake.notify()

    def _on_done(self, invocation: Invocation) -> None:
        event: QueuedEvent = invocation.source
        self._running -= 1
        event.last_payload = invocation.payload
        event.last_error = invocation.error_type if invocation.outcome else None
        event.last_version = invocation.pool.config.version
        lane = self._lanes.get(event.function)
        if lane is None or lane.pool.head is not invocation.pool.head:  # deleted meanwhile
            self._delete(event.seq)
            return
        lane.running -= 1
        config = lane.config
        if invocation.service_error is not None and not self._stopping:
            # Its worker's node was lost (a Ray cluster): a service error, not an attempt
            # (docs/lambda-behaviour.md, "Asynchronous invocation"); it may have run, and
            # runs again at once: delivered at least once, counted as redelivered.
            event.attempts -= 1
            self.redelivered += 1
            event.due_ms = _now_ms()
            heapq.heappush(self._delayed, (event.due_ms, event.seq, event))
            self._retried.append(event)
            self._wake.notify()
        elif invocation.outcome == 0:
            self._finish(event, records.SUCCESS)
        elif event.attempts <= config.retries and not self._stopping:
            delays = self._delays_ms
            event.due_ms = _now_ms() + delays[min(event.attempts, len(delays)) - 1]
            heapq.heappush(self._delayed, (event.due_ms, event.seq, event))
            self._retried.append(event)
            self._wake.notify()
        elif event.attempts <= config.retries:
            self._retried.append(event)  # shutting down: the next run retries it at once
            event.due_ms = 0
        else:
            self._finish(event, records.RETRIES_EXHAUSTED)
        self._start(lane)
        if not lane.running and not lane.claimed and not lane.ready:
            self._settled.notify_all()
        if self._stopping and not self._running:
            self._wake.notify()

    def _finish(self, event: QueuedEvent, condition: str) -> None:
        """An event's last attempt is over (or none will run): deliver its record where
        the function's configuration says, or just delete it."""
        lane = self._lanes.get(event.function)
        wanted = lane is not None and (
            lane.config.on_success if condition == records.SUCCESS
            else lane.config.on_failure or lane.dead_letter)
        if wanted:
            lane.in_transit += 1
            self._finished.append((event, condition, lane))
            self._wake.notify()
        else:
            self._delete(event.seq)

    def _delete(self, seq: int) -> None:
        done = self._done
        done.append(seq)
        if len(done) == 1:  # the pump may be asleep for long: it must flush within 50 ms
            self._flush_at_ms = _now_ms() + _FLUSH_MS
            self._wake.notify()
        elif len(done) == _FLUSH_COUNT:
            self._wake.notify()

    def _on_capacity(self) -> None:
        """Some invocation ended while claimed events waited for concurrency."""
        for lane in self._lanes.values():
            if lane.claimed:
                self._start(lane)

    # -- the pump thread -------------------------------------------------------------------

    def _run(self) -> None:
        lock = self.lock
        while True:
            with lock:
                work = self._collect()
                while work is None:
                    self._wake.wait(self._sleep_s())
                    work = self._collect()
            claims, finished, done, retried, released, stop = work
            self.store.apply(claimed=[event for _, events in claims for event in events],
                             done=done, retried=retried, released=released)
            for event, condition, lane in finished:
                if lane is self._lanes.get(event.function):  # (else deleted meanwhile)
                    try:
                        self._deliver(lane, event, condition)
                    except Exception:  # a destination must not stop the queue
                        self.delivery_failures += 1
                        _log.exception("could not deliver the %s record of %s to its "
                                       "destination", condition, event.request_id)
            with lock:
                for event, _, lane in finished:
                    self._delete(event.seq)
                    lane.in_transit -= 1
                for lane, events in claims:
                    lane.in_transit -= len(events)
                    if lane is self._lanes.get(lane.key):
                        lane.claimed.extend(events)
                        self._start(lane)
                    else:  # its function was deleted meanwhile: dropped with it
                        for event in events:
                            self._delete(event.seq)
                self._settled.notify_all()
            if stop:
                return

    def _collect(self) -> tuple[Any, ...] | None:
        """What the pump must do now, taken out of the shared state; None: nothing yet."""
        now = _now_ms()
        self._release_due(now)
        claims = [] if self._stopping else self._claims(now)
        finished, self._finished = self._finished, []
        retried, self._retried = self._retried, []
        released: list[QueuedEvent] = []
        stop = self._stopping and not finished and (not self._running or now >= self._stop_by_ms)
        if stop:  # claimed but not started: back to the queue, uncounted
            for lane in self._lanes.values():
                for event in lane.claimed:
                    event.attempts -= 1
                released += lane.claimed
                lane.claimed.clear()
        done: list[int] = []
        if stop or len(self._done) >= _FLUSH_COUNT or (self._done and now >= self._flush_at_ms):
            done, self._done = self._done, []
        if not (claims or finished or retried or released or done or stop):
            return None
        return claims, finished, done, retried, released, stop

    def _claims(self, now: int) -> list[tuple[Lane, list[QueuedEvent]]]:
        """Take ready events to claim, lane by lane; settle those that may not run."""
        claims = []
        for lane in self._lanes.values():
            wanted = _BUFFER - len(lane.claimed)
            if not lane.ready or wanted < _BUFFER // 2:
                continue
            zero = lane.pool.config.reserved_concurrency == 0
            max_age = lane.config.max_age_ms
            taken = []
            while lane.ready and len(taken) < wanted:
                event = lane.ready.popleft()
                if zero:
                    self._finish(event, records.ZERO_RESERVED_CONCURRENCY)
                elif now - event.enqueued_ms >= max_age:
                    self._finish(event, records.EVENT_AGE_EXCEEDED)
                else:
                    event.attempts += 1
                    taken.append(event)
            if taken:
                lane.in_transit += len(taken)
                claims.append((lane, taken))
        return claims

    def _release_due(self, now: int) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            event = heapq.heappop(delayed)[2]
            lane = self._lanes.get(event.function)
            if lane is not None:
                lane.ready.append(event)
            else:
                self._orphans.setdefault(event.function, []).append(event)

    def _sleep_s(self) -> float | None:
        now = _now_ms()
        wake = []
        if self._delayed:
            wake.append(self._delayed[0][0])
        if self._done:
            wake.append(self._flush_at_ms)
        if self._stopping:
            wake.append(self._stop_by_ms)
        return max(0.0, (min(wake) - now) / 1000) if wake else None

    # -- observing and stopping ------------------------------------------------------------

    def stats(self, name: str | None = None) -> dict[str, int]:
        """Counts of events: queued (waiting to run), delayed (a retry's delay), running;
        and since this Invoker started: recovered from the store, resumable (those of them
        that may run: their function exists now, with concurrency above 0, and they were
        younger than its maximum event age when recovered or when their retry falls due),
        redelivered (claimed for an attempt before a crash: they may run twice), delivery
        failures."""
        with self.lock:
            resumable = 0
            lanes = self._lanes_of(name)
            for lane in lanes:
                ages = self._recovered_ages.get(lane.key)
                if ages and lane.pool.head.config.reserved_concurrency != 0:
                    resumable += bisect.bisect_left(ages, lane.config.max_age_ms)
            keys = {lane.key for lane in lanes}
            queued = sum(len(lane.ready) + len(lane.claimed) for lane in lanes)
            delayed = sum(1 for _, _, event in self._delayed
                          if name is None or event.function in keys)
            figures = {"queued": queued, "delayed": delayed,
                       "running": sum(lane.running for lane in lanes)}
            if name is None:
                figures["orphaned"] = sum(len(events) for events in self._orphans.values())
            figures.update(recovered=self.recovered, resumable=resumable,
                           redelivered=self.redelivered, delivery_failures=self.delivery_failures)
            return figures

    def wait_settled(self, name: str | None, timeout_s: float | None) -> bool:
        """Wait until no event of ``name`` (None: of any function) is queued, running or
        having its record delivered; retries waiting for their delay do not count.  False
        if ``timeout_s`` passed."""
        def settled() -> bool:
            return not any(lane.running or lane.claimed or lane.ready or lane.in_transit
                           for lane in self._lanes_of(name))

        with self.lock:
            return self._settled.wait_for(settled, timeout_s)

    def _lanes_of(self, name: str | None) -> list[Lane]:
        """The lanes of function ``name`` ($LATEST's, its versions' and aliases'), or all."""
        return [lane for lane in self._lanes.values()
                if name is None or lane.pool.config.name == name]

    def close(self, grace_s: float) -> None:
        """Let running attempts finish (for up to ``grace_s``), write down what is left
        and stop.  Queued and delayed events stay in a durable store for the next run."""
        with self.lock:
            self._stopping = True
            self._stop_by_ms = _now_ms() + int(grace_s * 1000)
            self._wake.notify()
        self._thread.join()
        self.store.close()
