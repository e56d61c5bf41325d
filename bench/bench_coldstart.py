"""Cold start: from "no warm worker" to the first answer.

Baseline: a fresh interpreter (``functions/imports.py``) that imports what a worker
imports, reads the event on stdin and prints the answer, timed from spawn to the answer
line.  fastinvoke: ``recycle`` stops the warm worker, then one ``invoke`` is timed; the
worker that answers is a fresh fork of the initialised template (``cold_starts`` is
checked to grow by one each time).
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bench_latency import FUNCTIONS_DIR
from .data import ADD_EVENT, ADD_EVENT_BYTES, ADD_RESULT, MEMORY_MB, Sizes

SCRIPT = str(Path(FUNCTIONS_DIR) / "imports.py")


def summary(samples_ns: list[int]) -> dict[str, Any]:
    return {
        "metrics": {"p50_ms": statistics.median(samples_ns) / 1e6, "min_ms": min(samples_ns) / 1e6},
        "samples": len(samples_ns),
    }


def _spawn_once() -> int:
    started = time.perf_counter_ns()
    with subprocess.Popen(
        [sys.executable, SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as proc:
        proc.stdin.write(ADD_EVENT_BYTES)
        proc.stdin.close()
        answer = proc.stdout.readline()
        elapsed = time.perf_counter_ns() - started
        proc.wait(30)
    if answer.strip() != ADD_RESULT or proc.returncode != 0:
        raise AssertionError(f"baseline answered {answer!r}, exit {proc.returncode}")
    return elapsed


def fresh_interpreter(sizes: Sizes) -> dict[str, Any]:
    _spawn_once()  # warm the page cache and .pyc files, as fastinvoke's Init did
    gc.collect()
    return summary([_spawn_once() for _ in range(sizes.coldstarts)])


def fork_cold_starts(
    count: int,
    options: dict[str, Any] | None = None,
    verify: Callable[[], None] | None = None,
    function: dict[str, Any] | None = None,
) -> list[int]:
    """ns of ``count`` timed cold starts of ``add`` on ``Invoker(**options)``; ``verify``
    runs after the last one, while the worker that answered it is still alive.
    ``function`` overrides the Python add's FunctionConfig fields (another runtime's add)."""
    from fastinvoke import FunctionConfig, Invoker

    samples = []
    with Invoker(**(options or {})) as inv:
        fields = {"handler": "add.lambda_handler", "code": FUNCTIONS_DIR, **(function or {})}
        inv.create_function(FunctionConfig(name="add", memory_mb=MEMORY_MB, **fields))
        inv.invoke("add", ADD_EVENT)  # waits for the template's Init: not a measurement
        gc.collect()
        for _ in range(count):
            if inv.recycle("add") < 1:
                raise AssertionError("recycle stopped no worker: the next call is warm")
            before = inv.meter("add")["cold_starts"]
            started = time.perf_counter_ns()
            payload = inv.invoke("add", ADD_EVENT).payload
            samples.append(time.perf_counter_ns() - started)
            if payload != ADD_RESULT or inv.meter("add")["cold_starts"] != before + 1:
                raise AssertionError(f"not a cold start: {payload!r}, {inv.meter('add')}")
        if verify is not None:
            verify()
    return samples


def fastinvoke_fork(sizes: Sizes) -> dict[str, Any]:
    return summary(fork_cold_starts(sizes.coldstarts))
