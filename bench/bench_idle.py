"""What warm workers cost while nothing runs: the CPU of the whole process tree.

One function of 128 MB (``functions/gated_add.py``) on ``Invoker(max_workers=20)``.  A
batch of 20 events ``{"gate": PATH}`` with ``concurrency`` 20 holds 20 invocations at
once, so 20 workers are forked; once the meter shows all 20 running (readiness by probe),
the gate file is made, they answer, and the log store is flushed.  Then, over a window
of ``sizes.idle_s`` (10 s; 3 s quick) in which nothing is invoked, the CPU time of every
process of the tree is read (``proctree``): the caller, which holds the front-end's
threads (its main thread sleeps through the window), the template, and the 20 workers.

The figure is absolute, in percent of one core, and the group has no other row: a
baseline of a sleeping process tree would use next to nothing, and a ratio to it would
mean nothing (see bench/README.md).
"""

from __future__ import annotations

import gc
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import proctree
from .bench_latency import FUNCTIONS_DIR
from .data import Sizes

IDLE_WORKERS = 20
IDLE_MEMORY_MB = 128
READY_TIMEOUT_S = 30.0


def idle_workers(sizes: Sizes) -> dict[str, Any]:
    from fastinvoke import FunctionConfig, Invoker

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, \
            Invoker(max_workers=IDLE_WORKERS, sandbox=False) as inv:  # the gate: a host file
        inv.create_function(FunctionConfig(name="gated", handler="gated_add.lambda_handler",
                                           code=FUNCTIONS_DIR, memory_mb=IDLE_MEMORY_MB))
        gate = str(Path(tmp) / "gate")
        results: list[Any] = []
        failed: list[BaseException] = []

        def hold() -> None:
            try:
                results.extend(inv.invoke_many("gated", [{"gate": gate}] * IDLE_WORKERS,
                                               concurrency=IDLE_WORKERS))
            except BaseException as exc:  # reported by the main thread
                failed.append(exc)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            _wait_running(inv, holder)
        finally:
            Path(gate).touch()
            holder.join(READY_TIMEOUT_S)
        if failed or holder.is_alive():
            raise AssertionError(f"the gated batch did not end: {failed or 'still running'}")
        if [r.payload for r in results] != [b"0"] * IDLE_WORKERS:
            raise AssertionError(f"wrong answers: {[r.payload for r in results]}")
        meter = inv.meter("gated")
        if meter["cold_starts"] != IDLE_WORKERS or meter["concurrent"]:
            raise AssertionError(f"not {IDLE_WORKERS} idle workers: {meter}")
        inv.log_events("gated", limit=0)  # the batch's lines committed before the window
        tree = proctree.depths()
        workers = sorted(pid for pid, depth in tree.items() if depth >= 2)
        if len(workers) != IDLE_WORKERS:
            raise AssertionError(f"{len(workers)} worker processes, not {IDLE_WORKERS}: {tree}")
        gc.collect()
        started = time.perf_counter_ns()
        before = proctree.sample(tree)
        time.sleep(sizes.idle_s)
        after = proctree.sample(tree)
        window_ns = time.perf_counter_ns() - started
        used = proctree.used(before, after)
        if inv.meter("gated")["invocations"] != meter["invocations"]:
            raise AssertionError("something was invoked during the idle window")
    by_depth = {0: 0, 1: 0, 2: 0}
    for pid, ns in used.items():
        by_depth[min(tree[pid], 2)] += ns
    percent = 100 / window_ns
    return {
        "metrics": {
            "cpu_pct": sum(used.values()) * percent,
            "cpu_pct_front": by_depth[0] * percent,
            "cpu_pct_templates": by_depth[1] * percent,
            "cpu_pct_workers": by_depth[2] * percent,
        },
        "samples": len(used),
        "checked": (f"{IDLE_WORKERS} gated answers; {len(workers)} worker processes, "
                    f"{len(used)} in the tree, unchanged over {window_ns / 1e9:.1f} s; "
                    "no invocation in the window"),
    }


def _wait_running(inv: Any, holder: threading.Thread) -> None:
    """Readiness by probe: the meter shows all 20 invocations running, bounded in time."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while inv.meter("gated")["concurrent"] < IDLE_WORKERS:
        if not holder.is_alive() or time.monotonic() > deadline:
            raise AssertionError(f"{IDLE_WORKERS} invocations not running within "
                                 f"{READY_TIMEOUT_S} s: {inv.meter('gated')}")
        time.sleep(0.01)
