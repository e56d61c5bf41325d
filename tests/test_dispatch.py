"""The dispatcher's bookkeeping stays bounded while one invocation runs for long."""

from __future__ import annotations

import threading
from pathlib import Path

from helpers import notify_socket

from fastinvoke import FunctionConfig, Invoker
from fastinvoke._core import Dispatcher

FUNCTIONS = str(Path(__file__).resolve().parent / "functions")


def test_deadline_heap_is_compacted_behind_a_long_invocation() -> None:
    core = Dispatcher()
    core.add_worker(b"slow", "f")
    core.add_worker(b"fast", "f")
    core.begin("slow", core.pop_idle("f"), 10**18, None)
    for n in range(10_000):
        worker = core.pop_idle("f")
        core.begin(str(n), worker, n, None)
        assert core.finish(str(n), worker) is None
    assert core.deadlines < 200
    assert core.in_flight == 1
    assert core.next_deadline() == 10**18


def test_waiting_threads_do_not_pile_up_behind_a_slow_reader() -> None:
    with Invoker(sandbox=False) as invoker:  # its handler notifies a host socket
        invoker.create_function(FunctionConfig(name="slow", handler="sleeper.handler",
                                               code=FUNCTIONS, timeout_s=30))
        invoker.create_function(FunctionConfig(name="echo", handler="echo.handler",
                                               code=FUNCTIONS))
        invoker.call("echo", {})
        dispatcher = invoker._dispatcher
        with notify_socket() as (sock, path):
            # This thread's call becomes the reader: it reads for every caller below.
            reader = threading.Thread(
                target=invoker.call, args=("slow", {"seconds": 3, "notify": path}))
            reader.start()
            sock.recv(64)  # the slow invocation is running
        results = []

        def fast(base: int) -> None:
            for n in range(200):
                event = {"caller": base, "n": n}
                results.append(invoker.call("echo", event) == event)

        callers = [threading.Thread(target=fast, args=(b,)) for b in range(4)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join()
        assert all(results) and len(results) == 800
        assert len(dispatcher._followers) == 0  # none left behind while "slow" still runs
        reader.join()
