"""When requests are sent: a closed loop (N callers, each sending its next request when
the previous one answers) or an open loop (a fixed arrival rate, whatever the target
does).

A closed loop slows down with the target, so a stall delays the requests that were
never sent and no latency records it: coordinated omission.  The open loop measures
each request from its *intended* send time, as wrk2 does: when the target stalls, the
requests that should have gone out meanwhile are sent late and their wait is counted.

With ``batch`` N > 1 each call is one ``invoke_many`` of N invocations, and each of them
counts as a request (budget, rate, recorder), timed from the batch's start to its end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .recorder import Failure, Recorder

Call = Callable[[], Awaitable[Failure | None]]
# With batch N > 1: a call answers N outcomes, one per invocation.
BatchCall = Callable[[], Awaitable[list[Failure | None]]]
# The event loop's timers tick in milliseconds: an open-loop caller wakes up to one tick
# early rather than late, so the timer itself never adds to a measured latency.
TIMER_TICK_NS = 1_000_000


class Budget:
    """How long a run lasts: ``requests`` in all, or until ``duration_s`` has passed
    (for an open loop: until the intended send time passes it)."""

    def __init__(self, requests: int | None = None, duration_s: float | None = None) -> None:
        if (requests is None) == (duration_s is None):
            raise ValueError("give exactly one of requests and duration_s")
        self.requests = requests
        self.duration_ns = None if duration_s is None else int(duration_s * 1e9)
        self.issued = 0

    def next_index(self, count: int = 1) -> int | None:
        """The index of the next request, taking ``count`` (a batch) at once; None once
        the requests are issued (a last batch may go past them: give a multiple)."""
        if self.requests is not None and self.issued >= self.requests:
            return None
        self.issued += count
        return self.issued - count


async def closed_loop(call: Call | BatchCall, concurrency: int, budget: Budget,
                      recorder: Recorder, batch: int = 1) -> None:
    """``concurrency`` callers, each sending as soon as its previous request answered
    (``call`` a ``BatchCall`` when ``batch`` > 1)."""
    clock = time.perf_counter_ns
    deadline = None if budget.duration_ns is None else clock() + budget.duration_ns

    async def caller() -> None:
        record = _recording(recorder, batch)
        while (deadline is None or clock() < deadline) and \
                budget.next_index(batch) is not None:
            sent = clock()
            outcome = await call()
            record(sent, clock(), outcome)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    recorder.stop()


async def open_loop(call: Call | BatchCall, rate: float, concurrency: int, budget: Budget,
                    recorder: Recorder, batch: int = 1) -> None:
    """Request i is due at ``start + i / rate``; at most ``concurrency`` are in flight.

    A request sent late (every caller was busy, or the loop was) is timed from when it
    was due; one sent up to a timer tick early is timed from when it was sent.  With
    ``batch`` N, a batch is due with its first request: every N / ``rate`` seconds, and at
    most ``concurrency`` batches are in flight.
    """
    clock = time.perf_counter_ns
    interval_ns = 1e9 / rate
    start = clock()
    end = None if budget.duration_ns is None else start + budget.duration_ns

    async def caller() -> None:
        record = _recording(recorder, batch)
        while (i := budget.next_index(batch)) is not None:
            due = start + int(i * interval_ns)
            if end is not None and due >= end:
                return
            ahead_ns = due - clock() - TIMER_TICK_NS
            if ahead_ns > 0:
                await asyncio.sleep(ahead_ns / 1e9)
            sent = clock()
            outcome = await call()
            record(min(sent, due), clock(), outcome)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    recorder.stop()


def _recording(recorder: Recorder, batch: int) -> Callable[[int, int, Any], None]:
    return recorder.record if batch == 1 else recorder.record_batch
