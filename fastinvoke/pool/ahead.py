"""Invocations sent to a busy worker ahead of need.

When a function's workers are all busy and it may have no more, invocations wait in its
queue, and each worker, once it replies, waits in turn for the dispatcher to send it the
next: a wake-up each way per invocation, paid in full on a machine whose cores are all
taken.  Instead the dispatcher hands a worker several waiting invocations in one message
(``wire.Batch``), and sends the next batch while the worker still runs the last one: its
request lane is free again once the first invocation of the last message has replied, the
worker having taken that message.  The worker runs them in order and answers each as it
ends, so it goes from one to the next without waiting for the dispatcher.

An invocation sent ahead is not in flight until its worker begins it: the core sees it
begin (``hand_over``) when the one before it replies, and its deadline runs from then.
If the worker ends first, those not begun go back to the front of their queue (they never
ran).  Each is *marked*: the worker writes ``wire.OUTPUT_MARK`` into its output before
running it, so the lines printed before it began, and only those, go to the invocation
before it (``output.take``).

Only invocations an event loop or the Event queue waits for (``_batchable``), only
workers whose Hello says they run batches (Python's; a runtime's bridge does not);
only while the function has as many workers as it may, all of them up (so an invocation
never waits behind another where Lambda would have started an environment for it); and
only for a function whose invocations have lately been short (``SHORT_NS``): there the
hop's wake-ups are a large part of each one, and an invocation given to one worker
cannot wait long behind the one it runs while another worker frees up.  Every method
runs with the dispatcher's lock held.
"""

from __future__ import annotations

from collections import deque

from .records import FunctionPool, Invocation

# The most invocations one worker is given ahead, begun or not.
LIMIT = 16
# Only for a function whose recent round trips average below this.
SHORT_NS = 1_000_000


def _batchable(invocation: Invocation) -> bool:
    """Not a streamed one (its own message per part), nor one a thread waits for: a
    batch's replies come in a burst, and a burst of sleeping threads to wake costs the
    front-end more than the worker's wake-ups it saves (an event loop or the Event queue
    takes a burst in one go)."""
    return invocation.on_chunk is None and (
        invocation.future is not None or invocation.callback is not None)


class Ahead:
    def __init__(self) -> None:
        self.capable: set[bytes] = set()  # workers that run batches
        self.backlog: dict[bytes, deque[Invocation]] = {}  # sent ahead, not begun
        self.head: dict[bytes, str] = {}  # worker -> first request of the last batch sent
        self.lane_free: dict[bytes, FunctionPool] = {}  # busy, its request lane free
        self.batches = 0  # batches sent

    def wanted(self, worker: bytes, pool: FunctionPool) -> int:
        """How many of ``pool``'s waiting invocations ``worker`` should be given now
        (0: none); a fair share of the queue among the pool's workers."""
        if (worker not in self.capable or len(pool.workers) < pool.max_workers
                or pool.starting or not 0 < pool.round_trip_ns <= SHORT_NS):
            return 0
        room = LIMIT - len(self.backlog.get(worker, ()))
        share = -(-len(pool.queue) // max(1, len(pool.workers)))
        return min(room, share)

    def take(self, pool: FunctionPool, count: int) -> list[Invocation]:
        """Up to ``count`` invocations from the front of ``pool``'s queue that may be
        batched (``_batchable``)."""
        queue = pool.queue
        items = []
        while queue and len(items) < count and _batchable(queue[0]):
            items.append(queue.popleft())
        return items

    def sent(self, worker: bytes, head: str, ahead: list[Invocation]) -> None:
        """A batch went to ``worker``, its first request ``head``; ``ahead`` of it are
        not begun yet."""
        for invocation in ahead:
            invocation.ahead = True
        self.backlog.setdefault(worker, deque()).extend(ahead)
        self.batches += 1
        self.head[worker] = head
        self.lane_free.pop(worker, None)

    def sent_one(self, worker: bytes) -> None:
        """A lone invocation went to ``worker`` (idle: nothing ahead)."""
        self.head.pop(worker, None)

    def following(self, worker: bytes) -> Invocation | None:
        """What ``worker`` begins after the invocation it runs, if it was sent ahead."""
        backlog = self.backlog.get(worker)
        return backlog[0] if backlog else None

    def begun(self, worker: bytes) -> None:
        self.backlog[worker].popleft()

    def free_worker(self, pool: FunctionPool) -> bytes | None:
        """A busy worker of ``pool`` whose request lane is free and that takes more."""
        for worker, its_pool in self.lane_free.items():
            if its_pool is pool and self.wanted(worker, pool):
                return worker
        return None

    def take_back(self, worker: bytes) -> list[Invocation]:
        """``worker`` ends, or runs nothing more of its batches: what it was sent ahead
        and did not begin, in order."""
        self.head.pop(worker, None)
        self.lane_free.pop(worker, None)
        backlog = self.backlog.pop(worker, None)
        for invocation in backlog or ():
            invocation.ahead = False  # it may go alone to another worker
        return list(backlog) if backlog else []

    def forget(self, worker: bytes) -> None:
        """``worker`` is gone (what it was sent ahead was taken back already)."""
        self.capable.discard(worker)
