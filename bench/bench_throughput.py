"""Invocations per second with 64 invocations in flight over 2 workers.

Every contender runs the same seeded events and checks every answer after the clock
stops.  The baseline and fastinvoke follow the same rule: a worker holds one request at
a time and gets the next as soon as it replies; the rest wait in the driver.  The
pipelined row breaks that rule (each worker's queue holds 32) to show the ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from . import rawzmq
from .bench_latency import FUNCTIONS_DIR
from .data import ADD_EVENT, IN_FLIGHT, MEMORY_MB, WORKERS, Sizes, add_answers, add_events

WARM_BATCHES = 50


def _outcome(results: list[bytes | None], answers: list[bytes], elapsed_ns: int) -> dict:
    if results != answers:
        wrong = sum(r != a for r, a in zip(results, answers, strict=True))
        raise AssertionError(f"{wrong} of {len(answers)} answers are wrong")
    return {"metrics": {"inv_per_s": len(answers) / (elapsed_ns / 1e9)}, "samples": len(answers)}


def _raw(sizes: Sizes, per_worker: int) -> dict[str, Any]:
    """Raw ROUTER driver; ``per_worker`` requests may sit on one worker at once.  Events
    are encoded inside the clock, as ``invoke`` encodes its dict."""
    events = add_events(sizes.throughput_calls)
    answers = add_answers(events)
    tags = [i.to_bytes(4, "little") for i in range(len(events))]
    results: list[bytes | None] = [None] * len(events)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, contextlib.ExitStack() as stack:
        endpoint = f"ipc://{tmp}/router"
        for n in range(WORKERS):
            stack.enter_context(rawzmq.forked(rawzmq.serve_worker, endpoint, b"w%d" % n))
        context = zmq.Context(1)
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
        stack.callback(context.term)
        stack.callback(sock.close)
        send, recv, more, encode = rawzmq.send, rawzmq.recv, rawzmq.SNDMORE, rawzmq.encode
        workers = []
        for _ in range(WORKERS):  # readiness by probe: each worker's hello
            workers.append(rawzmq.recv_within(sock, 10_000))
            recv(sock)
        gc.collect()
        started = time.perf_counter_ns()
        # 64 logical requests outstanding: those not on a worker wait in ``waiting``.
        waiting = deque(range(min(IN_FLIGHT, len(events))))
        issued = len(waiting)
        for worker in workers:
            for _ in range(per_worker):
                if waiting:
                    i = waiting.popleft()
                    send(sock, worker, more)
                    send(sock, tags[i], more)
                    send(sock, encode(events[i]), 0)
        for _ in range(len(events)):
            worker = recv(sock)
            i = int.from_bytes(recv(sock), "little")
            results[i] = recv(sock)
            if issued < len(events):
                waiting.append(issued)
                issued += 1
            if waiting:
                i = waiting.popleft()
                send(sock, worker, more)
                send(sock, tags[i], more)
                send(sock, encode(events[i]), 0)
        elapsed = time.perf_counter_ns() - started
    return _outcome(results, answers, elapsed)


def raw_one_at_a_time(sizes: Sizes) -> dict[str, Any]:
    return _raw(sizes, 1)


def raw_pipelined(sizes: Sizes) -> dict[str, Any]:
    return _raw(sizes, IN_FLIGHT // WORKERS)


def _invoker() -> Any:
    from fastinvoke import FunctionConfig, Invoker

    inv = Invoker(max_workers=WORKERS)
    inv.create_function(
        FunctionConfig(name="add", handler="add.lambda_handler", code=FUNCTIONS_DIR,
                           memory_mb=MEMORY_MB)
    )
    return inv


def warm_workers(inv: Any, batch: Callable[[], object], name: str = "add") -> None:
    """Run 64-wide batches until both workers have answered (readiness by probe, bounded
    in batches: a fork takes milliseconds, a batch tens of them)."""
    for _ in range(WARM_BATCHES):
        batch()
        if inv.meter(name)["cold_starts"] == WORKERS:
            return
    raise AssertionError(f"fewer than {WORKERS} workers answered in {WARM_BATCHES} batches")


def check_workers(inv: Any, name: str = "add") -> None:
    """The two warm workers did all the timed work: no spawn was timed."""
    cold = inv.meter(name)["cold_starts"]
    if cold != WORKERS:
        raise AssertionError(f"{cold} cold starts, expected {WORKERS} (all in the warm-up)")


async def ainvoke_all(inv: Any, name: str, source: list, out: list[bytes | None]) -> int:
    """``source`` through ``ainvoke``, 64 tasks each awaiting one call at a time; each
    payload goes to ``out``.  Returns the elapsed ns (run it on uvloop)."""

    # Arguments, not closure cells: the hot loop reads fast locals only.
    async def caller(ainvoke: Any, name: str, indices: range, out: list, source: list) -> None:
        for i in indices:
            out[i] = (await ainvoke(name, source[i])).payload

    slices = [range(k, len(source), IN_FLIGHT) for k in range(IN_FLIGHT)]
    gc.collect()
    started = time.perf_counter_ns()
    await asyncio.gather(*(caller(inv.ainvoke, name, s, out, source) for s in slices))
    return time.perf_counter_ns() - started


def fastinvoke_async(sizes: Sizes) -> dict[str, Any]:
    import uvloop

    events = add_events(sizes.throughput_calls)
    answers = add_answers(events)
    results: list[bytes | None] = [None] * len(events)
    with _invoker() as inv:
        warm = [ADD_EVENT] * (IN_FLIGHT * 4)
        warm_workers(inv, lambda: uvloop.run(ainvoke_all(inv, "add", warm, [None] * len(warm))))
        elapsed = uvloop.run(ainvoke_all(inv, "add", events, results))
        check_workers(inv)
    return _outcome(results, answers, elapsed)


def fastinvoke_threads(sizes: Sizes) -> dict[str, Any]:
    events = add_events(sizes.throughput_calls)
    answers = add_answers(events)
    results: list[bytes | None] = [None] * len(events)

    def run(inv: Any, source: list, out: list[bytes | None]) -> int:
        gate = threading.Barrier(IN_FLIGHT + 1)

        def caller(indices: range) -> None:
            invoke = inv.invoke
            gate.wait()
            for i in indices:
                out[i] = invoke("add", source[i]).payload

        threads = [
            threading.Thread(target=caller, args=(range(k, len(source), IN_FLIGHT),))
            for k in range(IN_FLIGHT)
        ]
        for thread in threads:
            thread.start()
        gc.collect()
        started = time.perf_counter_ns()
        gate.wait()
        for thread in threads:
            thread.join()
        return time.perf_counter_ns() - started

    with _invoker() as inv:
        warm = [ADD_EVENT] * (IN_FLIGHT * 4)
        warm_workers(inv, lambda: run(inv, warm, [None] * len(warm)))
        elapsed = run(inv, events, results)
        check_workers(inv)
    return _outcome(results, answers, elapsed)
