"""Event invocations: how fast they are accepted, durably or not, and how fast a backlog
drains through 2 workers.

Acceptance: 64 asyncio callers (or one thread) invoke with ``invocation_type="Event"``;
the clock stops when the last 202 is back.  The durable rows commit every accepted event
to SQLite before its 202; the baselines keep events in memory (``durable_events=False``).
The events run meanwhile, on 2 workers, in both rows alike; after the clock stops the
benchmark waits for them and checks that every one ran.

Drain: both workers are held by a gated invocation while the events queue; the clock
starts when the gate opens and stops when the last event has run.  Its baseline is the
core throughput row (``ainvoke``, 64 in flight, 2 workers).
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import threading
import time
from typing import Any

from .bench_latency import FUNCTIONS_DIR
from .data import IN_FLIGHT, MEMORY_MB, WORKERS, Sizes, add_events

_WAIT_S = 300.0


def _invoker(state_dir: str, durable: bool) -> Any:
    from fastinvoke import FunctionConfig, Invoker

    # Unsandboxed: the gate is a file of this machine, which a sandbox hides.
    inv = Invoker(state_dir, max_workers=WORKERS, durable_events=durable, sandbox=False)
    inv.put_function(FunctionConfig(name="add", handler="gated_add.lambda_handler",
                                    code=FUNCTIONS_DIR, memory_mb=MEMORY_MB))
    return inv


def _all_ran(inv: Any, expected: int) -> None:
    if not inv.wait_for_events("add", _WAIT_S):
        raise AssertionError(f"events still queued after {_WAIT_S} s: {inv.event_stats()}")
    ran = inv.meter("add")["invocations"]
    if ran != expected:
        raise AssertionError(f"{ran} invocations ran, {expected} were accepted")


async def _accept_async(inv: Any, events: list) -> int:
    async def caller(ainvoke: Any, indices: range) -> None:
        for i in indices:
            await ainvoke("add", events[i], invocation_type="Event")

    slices = [range(k, len(events), IN_FLIGHT) for k in range(IN_FLIGHT)]
    gc.collect()
    started = time.perf_counter_ns()
    await asyncio.gather(*(caller(inv.ainvoke, s) for s in slices))
    return time.perf_counter_ns() - started


def _accept_sync(inv: Any, events: list) -> int:
    invoke = inv.invoke
    gc.collect()
    started = time.perf_counter_ns()
    for event in events:
        invoke("add", event, invocation_type="Event")
    return time.perf_counter_ns() - started


def _acceptance(sizes: Sizes, durable: bool, concurrent: bool) -> dict[str, Any]:
    import uvloop

    events = add_events(sizes.throughput_calls)
    with tempfile.TemporaryDirectory(prefix="bench-events-") as state_dir:
        inv = _invoker(state_dir, durable)
        try:
            elapsed = (uvloop.run(_accept_async(inv, events)) if concurrent
                       else _accept_sync(inv, events))
            _all_ran(inv, len(events))
        finally:
            inv.close()
    return {"metrics": {"accepted_per_s": len(events) / (elapsed / 1e9)},
            "samples": len(events)}


def memory_async(sizes: Sizes) -> dict[str, Any]:
    return _acceptance(sizes, durable=False, concurrent=True)


def durable_async(sizes: Sizes) -> dict[str, Any]:
    return _acceptance(sizes, durable=True, concurrent=True)


def memory_sync(sizes: Sizes) -> dict[str, Any]:
    return _acceptance(sizes, durable=False, concurrent=False)


def durable_sync(sizes: Sizes) -> dict[str, Any]:
    return _acceptance(sizes, durable=True, concurrent=False)


def drain(sizes: Sizes) -> dict[str, Any]:
    events = add_events(sizes.throughput_calls)
    with tempfile.TemporaryDirectory(prefix="bench-events-") as state_dir:
        inv = _invoker(state_dir, durable=True)
        gate = os.path.join(state_dir, "gate")
        try:
            holders = [threading.Thread(target=inv.invoke, args=("add", {"gate": gate}))
                       for _ in range(WORKERS)]
            for holder in holders:
                holder.start()
            while inv.meter("add")["concurrent"] < WORKERS:  # readiness by probe
                time.sleep(0.001)
            for event in events:
                inv.invoke("add", event, invocation_type="Event")
            gc.collect()
            started = time.perf_counter_ns()
            open(gate, "w").close()
            if not inv.wait_for_events("add", _WAIT_S):
                raise AssertionError(f"not drained in {_WAIT_S} s: {inv.event_stats()}")
            elapsed = time.perf_counter_ns() - started
            for holder in holders:
                holder.join()
            _all_ran(inv, len(events) + WORKERS)
            if inv.meter("add")["cold_starts"] != WORKERS:
                raise AssertionError("a worker was started during the drain")
        finally:
            inv.close()
    return {"metrics": {"inv_per_s": len(events) / (elapsed / 1e9)}, "samples": len(events)}
