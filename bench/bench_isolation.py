"""What isolating a worker costs: capturing its output, and giving it its own cgroup.

Log capture: the throughput run of ``bench_throughput.fastinvoke_async`` (64 asyncio
tasks on uvloop, 2 warm workers), once with a handler that prints nothing (the
baseline, ``functions/noop.py``; START, END and REPORT are still stored) and once with
one that prints one line per invocation (``functions/printer.py``).  After the clock
stops, the printed lines are read back from the log store: every timed invocation's
line must be there, once.  A second figure stops the clock when the store has
committed every line, not at the last reply: the writer thread runs in the caller's
process, and a backlog it pushes past the last reply is a cost too.

cgroup setup: the cold start of ``bench_coldstart.fastinvoke_fork`` on
``Invoker(cpu_limits="off", memory_limits=False)`` (the baseline: no cgroup is made)
and on ``Invoker()`` (a memory cgroup and a proportional CPU quota per worker, made and
joined on the way to the new worker's first reply).  Each run checks, from /proc, that
its workers are (or are not) in fastinvoke's groups, so neither measures the other.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .bench_coldstart import fork_cold_starts, summary
from .bench_latency import FUNCTIONS_DIR
from .bench_throughput import ainvoke_all, check_workers, warm_workers
from .data import IN_FLIGHT, MEMORY_MB, WORKERS, Sizes

PATTERN = '"line "'  # CloudWatch filter syntax: the phrase printer.py prints
WARM_N = -1  # the n of every warm-up event: never one of the timed invocations' n
NO_CGROUPS = {"cpu_limits": "off", "memory_limits": False}


def _throughput(handler: str, sizes: Sizes, verify: Callable[[Any, int], None]) -> dict:
    """Warm 2 workers of ``handler``, time ``ainvoke`` of the events ``{"n": i}``, check
    every answer, then ``verify(invoker, number of timed invocations)``."""
    import uvloop

    from fastinvoke import FunctionConfig, Invoker

    events = [{"n": n} for n in range(sizes.throughput_calls)]
    results: list[bytes | None] = [None] * len(events)
    with Invoker(max_workers=WORKERS) as inv:
        inv.create_function(
            FunctionConfig(name="f", handler=handler, code=FUNCTIONS_DIR, memory_mb=MEMORY_MB)
        )
        warm = [{"n": WARM_N}] * (IN_FLIGHT * 4)
        warm_workers(inv, lambda: uvloop.run(ainvoke_all(inv, "f", warm, [None] * len(warm))), "f")
        # log_events flushes the store, then queries; with LIMIT 0 the query reads
        # nothing, so this waits for the writer's backlog alone.  First the warm-up's,
        # so that none of it is written during the timed run.
        inv.log_events("f", limit=0)
        replied = uvloop.run(ainvoke_all(inv, "f", events, results))
        started = time.perf_counter_ns()
        inv.log_events("f", limit=0)  # then the timed run's: its lines committed
        stored = replied + time.perf_counter_ns() - started
        check_workers(inv, "f")
        if results != [b"null"] * len(events):
            wrong = sum(r != b"null" for r in results)
            raise AssertionError(f"{wrong} of {len(events)} answers are not null")
        verify(inv, len(events))
    metrics = {
        "inv_per_s": len(events) / (replied / 1e9),
        "inv_per_s_stored": len(events) / (stored / 1e9),
    }
    return {"metrics": metrics, "samples": len(events)}


def _every_line_stored(inv: Any, timed: int) -> None:
    """Each timed invocation printed ``line N`` with its own N: each N is stored once."""
    lines = inv.log_events("f", pattern=PATTERN)
    counts = Counter(int(event.message.removeprefix("line ")) for event in lines)
    missing = [n for n in range(timed) if counts[n] == 0]
    doubled = [n for n in range(timed) if counts[n] > 1]
    if missing or doubled:
        raise AssertionError(
            f"log capture lost {len(missing)} of {timed} lines (first: {missing[:5]}) and "
            f"stored {len(doubled)} more than once (first: {doubled[:5]}); {len(lines)} matched"
        )


def _no_line_stored(inv: Any, timed: int) -> None:
    """The baseline printed nothing: its store holds only START, END and REPORT."""
    if lines := inv.log_events("f", pattern=PATTERN, limit=1):
        raise AssertionError(f"the silent handler printed: {lines[0].message!r}")


def silent(sizes: Sizes) -> dict[str, Any]:
    return _throughput("noop.lambda_handler", sizes, _no_line_stored)


def printing(sizes: Sizes) -> dict[str, Any]:
    return _throughput("printer.lambda_handler", sizes, _every_line_stored)


def _groups_of_descendants() -> list[str]:
    """/proc/PID/cgroup of every process below this one (the template and its workers)."""
    found, pending = [], [os.getpid()]
    while pending:
        pid = pending.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as listing:
                    pending += [int(child) for child in listing.read().split()]
            if pid != os.getpid():
                with open(f"/proc/{pid}/cgroup") as groups:
                    found.append(groups.read())
        except FileNotFoundError:  # it ended while we looked: it holds no group
            continue
    return found


def _expect_groups(wanted: bool) -> None:
    """Some worker is in a ``fastinvoke-`` group (``wanted``), or no process is: else the
    contender measures the other one's setup (e.g. rlimits where cgroups are read-only)."""
    inside = sum("/fastinvoke-" in groups for groups in _groups_of_descendants())
    if bool(inside) != wanted:
        raise AssertionError(
            f"{inside} processes in fastinvoke's cgroups, expected {'some' if wanted else 0}"
        )


def no_cgroups(sizes: Sizes) -> dict[str, Any]:
    samples = fork_cold_starts(sizes.cgroup_coldstarts, NO_CGROUPS, lambda: _expect_groups(False))
    return summary(samples)


def cgroups(sizes: Sizes) -> dict[str, Any]:
    return summary(fork_cold_starts(sizes.cgroup_coldstarts, {}, lambda: _expect_groups(True)))
