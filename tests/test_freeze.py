"""Between invocations, nothing a handler left running runs (Lambda freezes the execution
environment once its handler has answered): its threads wait for the GIL the idle worker
holds, its processes are stopped until the next request comes.

Each test leaves something that ticks every few milliseconds, then looks at how far it
got over an idle window of 300 ms: running, it would tick hundreds (thread) or tens
(process) of times; frozen, only while the short invocations around the window ran.
"""

from __future__ import annotations

import time
from pathlib import Path

from helpers import FUNCTIONS, MakeInvoker

from fastinvoke import FunctionConfig

IDLE_S = 0.3


def test_a_thread_left_running_does_not_run_between_invocations(
        make_invoker: MakeInvoker) -> None:
    invoker = make_invoker(max_workers=1)
    invoker.create_function(FunctionConfig(name="leaver", handler="leaver.handler",
                                           code=FUNCTIONS))
    invoker.call("leaver", {"do": "thread"})
    before = invoker.call("leaver", {"do": "look"})["ticks"]
    time.sleep(IDLE_S)  # the idle window observed, not a wait for anything
    after = invoker.call("leaver", {"do": "look"})["ticks"]
    assert after - before < 30, (before, after)  # running: about 300 (1 ms a tick)
    napped = invoker.call("leaver", {"do": "nap", "seconds": IDLE_S})["ticks"]
    assert napped - after >= 30  # alive, and it runs while an invocation does


def test_a_process_left_running_is_stopped_between_invocations(
        make_invoker: MakeInvoker, tmp_path: Path) -> None:
    invoker = make_invoker(max_workers=1)
    invoker.create_function(FunctionConfig(name="leaver", handler="leaver.handler",
                                           code=FUNCTIONS))
    path = str(tmp_path / "ticks")
    invoker.call("leaver", {"do": "process", "path": path})
    before = invoker.call("leaver", {"do": "look", "path": path})["lines"]
    time.sleep(IDLE_S)  # the idle window observed, not a wait for anything
    after = invoker.call("leaver", {"do": "look", "path": path})["lines"]
    assert after - before <= 5, (before, after)  # running: about 30 (10 ms a line)
    invoker.call("leaver", {"do": "stop", "path": path})
