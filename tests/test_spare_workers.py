"""Spare workers: when an invocation takes a function's last idle worker, the next one is
forked at once, so a rise in concurrency finds it ready instead of waiting for a fork."""

from __future__ import annotations

import threading
from pathlib import Path

from helpers import MakeFunction, MakeInvoker, descendants, log_of, parent_of, report_of, wait_until

from fastinvoke import Invoker

GATED = """\
import os
import time


def handler(event, context):
    while "gate" in event and not os.path.exists(event["gate"]):
        time.sleep(0.002)
    return os.getpid()
"""


def workers(invoker: Invoker) -> set[int]:
    """The worker processes of ``invoker`` (children of its template processes)."""
    import os

    mine = descendants(os.getpid())
    templates = {pid for pid in mine if parent_of(pid) == os.getpid()}
    return {pid for pid in mine if parent_of(pid) in templates}


def test_a_spare_is_ready_before_concurrency_rises(make_invoker: MakeInvoker,
                                                   make_function: MakeFunction,
                                                   tmp_path: Path) -> None:
    invoker = make_invoker()
    name = make_function("gated.handler", invoker=invoker, source=GATED)
    first = invoker.call(name, {})
    spares = wait_until(lambda: workers(invoker) - {first},
                        message="no spare was forked after the last idle worker was taken")
    assert len(spares) == 1
    gate = tmp_path / "gate"
    held = threading.Thread(target=invoker.invoke, args=(name, {"gate": str(gate)}))
    held.start()
    try:
        wait_until(lambda: invoker.meter(name)["concurrent"] == 1)
        second = invoker.invoke(name, {})  # the first worker is busy: the spare serves it
    finally:
        gate.touch()
        held.join()
    assert int(second.payload) in spares  # it was running before this invocation came
    text = log_of(invoker, name, second.request_id)
    assert text is not None and report_of(text)["init"] is not None  # a cold start, honestly
    meter = invoker.meter(name)
    assert meter["cold_starts"] == 2 and meter["invocations"] == 3


def test_spares_count_against_max_workers_and_the_memory_budget(
        make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    capped = make_invoker(max_workers=1)
    name = make_function("gated.handler", invoker=capped, source=GATED)
    capped.call(name, {})
    assert len(capped._functions.pool(name).workers) == 1
    budget = make_invoker(memory_budget_mb=256)
    name = make_function("gated.handler", invoker=budget, source=GATED, memory_mb=256)
    budget.call(name, {})
    assert len(budget._functions.pool(name).workers) == 1
    off = make_invoker(spare_workers=False)
    name = make_function("gated.handler", invoker=off, source=GATED)
    off.call(name, {})
    assert len(off._functions.pool(name).workers) == 1
