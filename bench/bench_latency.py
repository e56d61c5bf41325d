"""Latency of one warm synchronous call of the add handler: p50 and p99.

Contenders: the raw DEALER/ROUTER round trip (baseline, the floor of the earlier ZeroMQ hop),
fastinvoke's embedded ``Invoker.invoke``, and ``ProcessPoolExecutor(1)``.  Every one
encodes the same event, crosses a process boundary, runs the handler and returns.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import zmq

from . import proctree, rawzmq
from .data import ADD_EVENT, ADD_RESULT, MEMORY_MB, Sizes
from .functions.add import lambda_handler
from .stats import latency_us

FUNCTIONS_DIR = str(Path(__file__).parent / "functions")


def _time_calls(call: Callable[[], Any], expected: Any, sizes: Sizes,
                tree_cpu: bool = True) -> dict[str, Any]:
    """Warm up, then time ``sizes.latency_calls`` calls one after another; every answer
    is checked (after the clock stops).  ``tree_cpu``: also the CPU per call of every
    process involved, the caller and all below it (``proctree``); off for a peer that
    starts a process per call, whose tree changes under the loop."""
    for _ in range(sizes.warmup_calls):
        if call() != expected:
            raise AssertionError(f"wrong answer: {call()!r} != {expected!r}")
    gc.collect()
    clock = time.perf_counter_ns
    samples = []
    answers = []
    tree = proctree.depths() if tree_cpu else {}
    tree_started = proctree.sample(tree)
    cpu_started = time.process_time_ns()
    for _ in range(sizes.latency_calls):
        started = clock()
        answer = call()
        samples.append(clock() - started)
        answers.append(answer)
    # The caller's own CPU per call (every thread, ZeroMQ's I/O thread too): what the
    # front-end costs, apart from the wait for the worker.
    cpu_us = (time.process_time_ns() - cpu_started) / len(samples) / 1e3
    tree_ended = proctree.sample(tree)
    wrong = sum(answer != expected for answer in answers)
    if wrong:
        raise AssertionError(f"{wrong} of {len(answers)} timed answers are wrong")
    metrics = {**latency_us(samples), "cpu_us": cpu_us}
    if tree_cpu:
        # Caller + workers (every thread of each): what one invocation costs the machine.
        used = proctree.used(tree_started, tree_ended)
        metrics["cpu_us_per_call"] = sum(used.values()) / len(samples) / 1e3
    return {"metrics": metrics, "samples": len(samples)}


def raw_zmq(sizes: Sizes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        endpoint = f"ipc://{tmp}/echo"
        with rawzmq.forked(rawzmq.serve_echo, endpoint):
            context = zmq.Context(1)
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            send, recv, encode = rawzmq.send, rawzmq.recv, rawzmq.encode
            # Readiness by probe: the first round trip, bounded in time.
            send(sock, encode(ADD_EVENT), 0)
            rawzmq.recv_within(sock, 10_000)

            def call() -> bytes:
                send(sock, encode(ADD_EVENT), 0)
                return recv(sock)

            try:
                return _time_calls(call, ADD_RESULT, sizes)
            finally:
                sock.close()
                context.term()


def fastinvoke_invoke(sizes: Sizes, cpu_limits: str = "proportional",
                      sandbox: bool = True) -> dict[str, Any]:
    from fastinvoke import FunctionConfig, Invoker

    with Invoker(cpu_limits=cpu_limits, sandbox=sandbox) as inv:
        inv.create_function(
            FunctionConfig(name="add", handler="add.lambda_handler", code=FUNCTIONS_DIR,
                           memory_mb=MEMORY_MB)
        )
        invoke = inv.invoke
        return _time_calls(lambda: invoke("add", ADD_EVENT).payload, ADD_RESULT, sizes)


def fastinvoke_invoke_unquoted(sizes: Sizes) -> dict[str, Any]:
    """The same without CPU limits (memory cgroups stay): on this VM the hard quota's CFS
    bandwidth accounting costs every wake-up of a worker; this row shows how much."""
    return fastinvoke_invoke(sizes, cpu_limits="off")


def process_pool(sizes: Sizes) -> dict[str, Any]:
    with ProcessPoolExecutor(1) as pool:
        submit = pool.submit
        return _time_calls(lambda: submit(lambda_handler, ADD_EVENT, None).result(), 3, sizes)
