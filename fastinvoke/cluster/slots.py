"""Remote workers as the front-end's dispatcher sees them: *slots*.

A slot is one worker's room on a node: a Ray reservation of its CPU and memory there, and
one invocation at a time sent to the node for it.  To the dispatcher a slot is a worker
like a local one: idle in its function's stack, busy with one request, with a deadline.
``Slots`` has the pool's ``Workers`` interface (``grow``, ``keep_spare``) and does for slots
what ``Workers`` does for processes: it asks for slots when invocations wait, gives them
to the dispatcher once placed, releases them after the keep-warm time, and ends what a
lost node was running with ``ServiceException`` (it may have run): a synchronous caller
gets that error, and the Event queue runs an Event invocation again elsewhere (at least
once, counted as redelivered).

A slot's invocations cross the network twice, so while invocations wait for its
function, a slot takes up to ``protocol.PIPELINE_DEPTH`` more (*lanes*: the dispatcher
sees each as a worker of its own): they wait at the node, which starts the next one the
moment its worker replies instead of a round trip later.  Lanes beyond the first close as soon as
nothing waits.  The node enforces every invocation's timeout itself, from its start there.

Every method runs with the dispatcher's lock held.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from .._core import monotonic_ns
from ..errors import ServiceException
from ..metering import CRASH
from ..pool.alarm import Alarm
from ..pool.failures import fail_queue, platform_error
from ..pool.hop import Hop
from ..pool.lifecycle import kept_too_long, next_keep_warm_expiry
from ..pool.records import FunctionPool, Invocation
from . import protocol
from .link import LOST_AFTER_S, NodeLink

_log = logging.getLogger("fastinvoke")

# A reservation Ray has not placed after this long waits for room (Ray does not say so).
STARVED_NS = 50_000_000
_WARN_EVERY_NS = 60_000_000_000


class Slot:
    """``state``: placing (its reservation asked of Ray) -> ready -> released.
    ``lanes``: the dispatcher's worker ids for it, its own id first."""

    __slots__ = ("id", "pool", "node", "group", "state", "last_used_ns", "generation",
                 "provisioned", "lanes", "made_room")

    def __init__(self, slot_id: bytes, pool: FunctionPool, provisioned: bool) -> None:
        self.id = slot_id
        self.pool = pool
        self.node: NodeLink | None = None
        self.group: Any = None  # its Ray placement group, once made
        self.state = "placing"
        self.last_used_ns = monotonic_ns()  # while placing: when it was asked for
        self.made_room = False  # an idle worker of another function was stopped for it
        self.generation = pool.generation
        self.provisioned = provisioned
        self.lanes: list[bytes] = []


class SlotLink:
    """What the dispatcher sends a slot's invocation through (its ``links`` entry)."""

    __slots__ = ("_node", "_slot", "_function")

    def __init__(self, node: NodeLink, slot: bytes, function: str) -> None:
        self._node, self._slot, self._function = node, slot, function

    def send(self, message: bytes) -> None:
        self._node.send(protocol.Run(self._slot, self._function, message))


class Slots:
    # The node kills a worker at the function's timeout itself: an answer may come this
    # long after it.  (A node that falls silent is found lost sooner, by the relay.)
    deadline_slack_ns = int(2 * LOST_AFTER_S * 1e9)

    def __init__(self, hop: Hop, alarm: Alarm, keep_warm_ns: int,
                 add_link: Callable[[bytes, SlotLink], None],
                 refusal: Callable[[FunctionPool], str | None]) -> None:
        self._hop = hop
        self._refusal = refusal
        self._alarm = alarm
        self._add_link = add_link
        self.keep_warm_ns = keep_warm_ns
        self.records: dict[bytes, Slot] = {}
        self._lanes: dict[bytes, Slot] = {}  # lane -> its slot
        self._recycling: dict[str, set[NodeLink]] = {}  # function -> nodes recycling it
        self._warned: dict[str, int] = {}  # function -> when to warn again of no room
        self.ended = threading.Condition(hop.lock)  # notified when a node has recycled
        self.placing: list[Slot] = []  # slots whose reservation Ray has not placed yet
        self.released: list[Any] = []  # reservations to give back to Ray
        self._ids = itertools.count(1)

    # -- the Workers interface --------------------------------------------------------------

    def grow(self, pool: FunctionPool) -> None:
        """Ask for as many slots as queued invocations and provisioned concurrency need;
        if no node left in the cluster could hold one, fail what waits instead."""
        if pool.deleted:
            return
        live = len(pool.workers)
        wanted = max(len(pool.queue) - pool.starting, pool.config.provisioned - live)
        count = min(wanted, max(pool.max_workers, 1 if pool.queue else 0) - live)
        if count > 0 and not pool.starting:
            refusal = self._refusal(pool)
            if refusal is not None:
                fail_queue(self._hop, pool, "Runtime.Unknown", refusal)
                return
        for _ in range(count):
            slot = Slot(f"s{next(self._ids)}-{pool.id_name}".encode(), pool,
                        len(pool.workers) < pool.config.provisioned)
            pool.workers[slot.id] = slot
            self.records[slot.id] = slot
            pool.starting += 1
            self.placing.append(slot)
        if count > 0:
            self._alarm.ring()

    def keep_spare(self, pool: FunctionPool) -> None:
        """No spares: a spare slot would hold a reservation on the cluster unused."""

    # -- placement ----------------------------------------------------------------------------

    def placed(self, slot: Slot, node: NodeLink) -> None:
        """Ray placed ``slot``'s reservation on ``node``, which runs its function's
        current generation: the dispatcher may use it."""
        if slot.state != "placing":
            return
        pool = slot.pool
        slot.node, slot.state = node, "ready"
        slot.last_used_ns = monotonic_ns()
        node.resize(pool.name, 1)
        self._open_lane(slot, slot.id)
        pool.starting -= 1
        self._hop.dispatch_queued(pool)

    def _open_lane(self, slot: Slot, lane: bytes) -> None:
        slot.lanes.append(lane)
        self._lanes[lane] = slot
        self._add_link(lane, SlotLink(slot.node, lane, slot.pool.name))
        self._hop.core.add_worker(lane, slot.pool.name)

    def _close_lane(self, slot: Slot, lane: bytes) -> Invocation | None:
        """Close ``lane``; the invocation it had in flight, if any (its caller's to end)."""
        slot.lanes.remove(lane)
        del self._lanes[lane]
        found = self._hop.core.drop_worker(lane)
        self._hop.close_link(lane)
        return None if found is None else found[1]

    def release(self, slot: Slot) -> list[Invocation]:
        """Give ``slot`` up; the invocations it had in flight (their caller's to end)."""
        if slot.state == "released":
            return []
        pool = slot.pool
        if slot.state == "placing":
            pool.starting -= 1
            if slot in self.placing:
                self.placing.remove(slot)
        slot.state = "released"
        running = [invocation for lane in list(slot.lanes)
                   if (invocation := self._close_lane(slot, lane)) is not None]
        pool.workers.pop(slot.id, None)
        self.records.pop(slot.id, None)
        if slot.node is not None:
            slot.node.resize(pool.name, -1)
        if slot.group is not None:
            self.released.append(slot.group)
            self._alarm.ring()
        return running

    def make_room(self, now: int) -> None:
        """Slots Ray has left unplaced for ``STARVED_NS``: the cluster is full.  As the
        local memory budget does, stop an idle worker of another function for each (the
        least recently used, never a provisioned one); and ask again for the reservation
        of one that still waits ``STARVED_NS`` later (Ray retries a waiting one only about
        once a second, even when room came back meanwhile)."""
        for slot in self.placing:
            if slot.group is None or now - slot.last_used_ns < STARVED_NS:
                continue
            if slot.made_room:  # room was made: ask anew, in it
                self.released.append(slot.group)
                slot.group, slot.made_room, slot.last_used_ns = None, False, now
                continue
            slot.made_room = True
            slot.last_used_ns = now
            idle = [other for other in self.records.values() if other.pool is not slot.pool
                    and not other.provisioned and self._idle(other)]
            if idle:
                self.release(min(idle, key=lambda other: other.last_used_ns))
            name = slot.pool.name
            if now >= self._warned.get(name, 0):  # at most once a minute a function
                self._warned[name] = now + _WARN_EVERY_NS
                _log.warning(
                    "fastinvoke: the Ray cluster has no room for another worker of %s; idle "
                    "workers of other functions are stopped to make some, and its "
                    "invocations wait. Add nodes, lower memory sizes or raise the "
                    "overcommit factor to run more at once.", name)

    def placing_since(self) -> int:
        """When the most recently asked slot still unplaced was asked for (0: none)."""
        return max((slot.last_used_ns for slot in self.placing), default=0)

    def _idle(self, slot: Slot) -> bool:
        return slot.state == "ready" and len(slot.lanes) == 1 \
            and self._hop.core.is_idle(slot.id)

    # -- answers ------------------------------------------------------------------------------

    def finished(self, node: NodeLink, done: protocol.Done) -> None:
        """A node answered an invocation."""
        invocation = self._hop.core.finish(done.request_id, done.slot)
        if invocation is None:
            return  # failed already (its node taken for lost, or the function deleted)
        pool = invocation.pool
        invocation.outcome = done.outcome
        invocation.error_type = done.error_type
        invocation.payload = done.payload
        invocation.duration_ns = done.duration_ns
        invocation.max_rss_kb = done.max_rss_kb
        invocation.cold = done.cold
        invocation.init_ns = done.init_ns
        invocation.log = done.log
        invocation.log_stream = done.log_stream
        slot = self._lanes.get(done.slot)
        if slot is not None:
            if slot.provisioned:
                pool.meter.served_provisioned()
            slot.last_used_ns = monotonic_ns()
        self._hop.complete(invocation)
        if slot is None:
            return
        if slot.generation != pool.generation:  # its configuration changed meanwhile
            self._close_idle_lanes(slot)
            if self._idle(slot):
                self.release(slot)
            return
        if pool.queue:
            if len(slot.lanes) <= protocol.PIPELINE_DEPTH:  # some closed while nothing waited
                open_now = set(slot.lanes)
                for number in range(1, protocol.PIPELINE_DEPTH + 1):
                    if (lane := slot.id + b"+%d" % number) not in open_now:
                        self._open_lane(slot, lane)
            self._hop.dispatch_queued(pool)
        if not pool.queue:  # nothing waits: no invocation goes ahead of time
            for each in pool.workers.values():
                self._close_idle_lanes(each)

    def _close_idle_lanes(self, slot: Slot) -> None:
        """Close ``slot``'s extra lanes that carry nothing (some were opened for a
        backlog that other lanes took), so that an idle slot is one idle worker."""
        is_idle = self._hop.core.is_idle
        for lane in slot.lanes[1:]:
            if is_idle(lane):
                self._close_lane(slot, lane)

    def node_lost(self, node: NodeLink) -> None:
        """``node`` stopped answering: end what it ran, and place its slots again."""
        lost = [slot for slot in self.records.values() if slot.node is node]
        for slot in lost:
            for invocation in self.release(slot):
                self._end_lost(invocation, f"Ray node {node.node_id} was lost")
        for pool in {slot.pool.name: slot.pool for slot in lost}.values():
            self.grow(pool)

    def _end_lost(self, invocation: Invocation, reason: str) -> None:
        fail_lost(invocation, reason)  # an Event invocation's queue runs it again
        self._hop.complete(invocation)

    # -- the supervisor's rounds --------------------------------------------------------------

    def expire(self, now: int) -> None:
        """Invocations unanswered past their timeout and the slack.  A node that answers
        pings enforces its invocations' timeouts itself, from their start there (a lane's
        may wait behind others first): those are left to it.  One on a node no longer
        up ends as lost, with its slot (the relay normally ends those first)."""
        for _, lane, invocation in self._hop.core.expired(now):
            slot = self._lanes.get(lane)
            if slot is None or slot.node is None or slot.node.up:
                continue
            node = slot.node.node_id if slot.node is not None else "?"
            for running in self.release(slot):
                self._end_lost(running, f"Ray node {node} did not answer within the "
                                        "function's timeout")
            self.grow(invocation.pool)

    def stop_idle(self, now: int) -> None:
        """Release slots idle for the keep-warm time (not provisioned ones)."""
        for slot in kept_too_long(self.records.values(), now, self.keep_warm_ns, self._idle):
            self.release(slot)

    def next_idle_expiry(self, wake_at: int) -> int:
        return next_keep_warm_expiry(self.records.values(), wake_at, self.keep_warm_ns,
                                     self._idle)

    def recycle(self, pool: FunctionPool, wait_s: float) -> int:
        """Have the nodes stop ``pool``'s idle workers and wait (up to ``wait_s``) until
        each says they have ended; the slots stay, so the next invocations are cold
        starts where they are.  How many slots were idle."""
        idle = [slot for slot in pool.workers.values() if self._idle(slot)]
        nodes = {slot.node for slot in idle if slot.node.up}
        waiting = self._recycling.setdefault(pool.name, set())
        waiting |= nodes
        for node in nodes:
            node.send(protocol.Recycle(pool.name, wait_s))
        self.ended.wait_for(lambda: not (waiting & nodes) or pool.deleted, timeout=wait_s)
        return len(idle)

    def recycled(self, node: NodeLink, recycled: protocol.Recycled) -> None:
        self._recycling.get(recycled.function, set()).discard(node)
        self.ended.notify_all()

    def stop_old(self, pool: FunctionPool) -> None:
        """``pool``'s configuration changed: release its idle slots of older ones."""
        for slot in list(pool.workers.values()):
            if slot.generation != pool.generation and (
                    slot.state == "placing" or self._idle(slot)):
                self.release(slot)

    def crash_all(self, pool: FunctionPool, reason: str) -> None:
        for slot in list(pool.workers.values()):
            for invocation in self.release(slot):
                platform_error(invocation, CRASH, "Runtime.ExitError", reason)
                self._hop.complete(invocation)

    def placement(self, pool: FunctionPool) -> dict[str, int]:
        """Ray node id -> ``pool``'s workers placed there."""
        nodes: dict[str, int] = {}
        for slot in pool.workers.values():
            if slot.state == "ready":
                nodes[slot.node.node_id] = nodes.get(slot.node.node_id, 0) + 1
        return nodes


def fail_lost(invocation: Invocation, reason: str) -> None:
    """End ``invocation`` with the service error its caller gets: ``ServiceException``."""
    platform_error(invocation, CRASH, "ServiceException", reason)
    invocation.log = f"RequestId: {invocation.request_id} Error: {reason}\n".encode()
    invocation.service_error = ServiceException(
        f"{reason} while it ran {invocation.request_id}; the invocation may or may not have "
        "run: retry it if it is idempotent")
