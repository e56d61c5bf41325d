"""The warm pool through a real Invoker: state, timeouts, crashes, healing, concurrency,
deletion and shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import uvloop
from helpers import (
    FUNCTIONS,
    MakeFunction,
    MakeInvoker,
    alive,
    descendants,
    describe,
    document,
    kill_all,
    notify_socket,
    read_line,
    report_of,
    tail_text,
    wait_until,
)

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.errors import ResourceNotFoundException

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_warm_state_is_kept_across_invocations(invoker: Invoker,
                                               make_function: MakeFunction) -> None:
    name = make_function("counter.handler")
    results = [invoker.call(name) for _ in range(3)]
    pid = results[0]["pid"]
    assert results == [{"count": 1, "pid": pid}, {"count": 2, "pid": pid},
                       {"count": 3, "pid": pid}]
    assert pid in descendants(os.getpid())
    figures = invoker.meter(name)
    assert (figures["invocations"], figures["cold_starts"], figures["errors"]) == (3, 1, 0)


# -- timeouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("busy", [False, True], ids=["sleeping", "busy-looping"])
def test_timeout_kills_and_replaces_the_worker(invoker: Invoker, make_function: MakeFunction,
                                               busy: bool) -> None:
    name = make_function("hang.busy" if busy else "counter.handler", timeout_s=1)
    warm = None if busy else invoker.call(name)
    result = invoker.invoke(name, {"hang": True}, log_type="Tail")
    assert (result.status_code, result.function_error) == (200, "Unhandled")
    rid = result.request_id
    doc = document(result)
    assert doc == {"errorType": "Sandbox.Timedout",
                   "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds"}
    assert list(doc) == ["errorType", "errorMessage"]  # key order as Lambda sends it
    text = tail_text(result)
    assert re.search(rf"\n\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {rid} Task timed out after "
                     rf"1\.00 seconds\nEND RequestId: {rid}\n", text), text
    report = report_of(text)
    assert report["status"] == "timeout" and report["error_type"] is None
    assert report["duration"] == "1000.00" and report["billed"] == "1000"
    figures = invoker.meter(name)
    assert (figures["timeouts"], figures["errors"]) == (1, 1)
    if busy:
        return
    # The worker was killed; the next call gets a fresh one: module state is reset.
    after = invoker.invoke(name, log_type="Tail")
    assert document(after)["count"] == 1
    assert document(after)["pid"] != warm["pid"]
    assert report_of(tail_text(after))["init"] is not None  # a cold start again
    wait_until(lambda: not alive(warm["pid"]), message=f"timed-out worker {warm['pid']} lives")


def test_a_killed_workers_request_never_gets_another_requests_result(
        invoker: Invoker, make_function: MakeFunction) -> None:
    """Timed-out invocations and the ones right after them each get their own result."""
    name = make_function("sleeper.handler", timeout_s=1)

    def invoke(event: dict) -> tuple[str, object]:
        result = invoker.invoke(name, event)
        return result.request_id, document(result)

    events = [{"id": f"late-{i}", "seconds": 30} for i in range(2)]
    events += [{"id": f"quick-{i}"} for i in range(4)]
    with ThreadPoolExecutor(len(events)) as pool:
        results = list(pool.map(invoke, events))
        after = list(pool.map(invoke, [{"id": f"after-{i}"} for i in range(4)]))
    for event, (rid, doc) in zip(events, results, strict=True):
        if event["id"].startswith("late"):
            assert doc == {"errorType": "Sandbox.Timedout", "errorMessage":
                           f"RequestId: {rid} Error: Task timed out after 1.00 seconds"}
        else:
            assert doc["id"] == event["id"]
    assert [doc["id"] for _, doc in after] == [f"after-{i}" for i in range(4)]


# -- crashes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("handler", "reason"), [
    ("exit_.handler", "exit status 3"),
    ("segfault.handler", "signal: segmentation fault"),
    ("kill9.handler", "signal: killed"),
])
def test_runtime_exit_is_reported_and_the_pool_heals(
        invoker: Invoker, make_function: MakeFunction, handler: str, reason: str) -> None:
    name = make_function(handler)
    pids = [invoker.call(name, {"survive": True})]
    for _ in range(2):
        result = invoker.invoke(name, log_type="Tail")
        rid = result.request_id
        assert (result.status_code, result.function_error) == (200, "Unhandled")
        message = f"RequestId: {rid} Error: Runtime exited with error: {reason}"
        assert json.loads(result.payload) == {"errorType": "Runtime.ExitError",
                                              "errorMessage": message}
        assert list(json.loads(result.payload)) == ["errorType", "errorMessage"]
        text = tail_text(result)
        assert f"\n{message}\nRuntime.ExitError\nEND RequestId: {rid}\n" in text, text
        report = report_of(text)
        assert (report["status"], report["error_type"]) == ("error", "Runtime.ExitError")
        crashed = pids[-1]
        pids.append(invoker.call(name, {"survive": True}))  # healed: a new worker
        wait_until(lambda pid=crashed: not alive(pid), message=f"crashed worker {crashed} lives")
    assert len(set(pids)) == 3, pids
    figures = invoker.meter(name)
    assert (figures["invocations"], figures["errors"], figures["timeouts"]) == (5, 2, 0)


def test_init_failure_is_reported_to_each_invocation_without_retrying_in_a_loop(
        invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("init_raises.handler")
    attempts = 4
    results = [invoker.invoke(name) for _ in range(attempts)]
    # Each Init runs in a template process, which exits when Init fails: once they are
    # gone, count the Inits from their output (each printed its traceback).
    wait_until(lambda: not descendants(os.getpid()),
               message=lambda: describe(descendants(os.getpid())))
    init_log = os.path.join(invoker.state_dir, "logs", f"{name}.init.log")
    with open(init_log) as file:
        tries = file.read().count("\nException: Runtime startup fails\n")
    # One Init when the function was created, at most one retry per invocation.
    assert 1 <= tries <= attempts + 1
    figures = invoker.meter(name)
    assert (figures["invocations"], figures["errors"]) == (attempts, attempts)
    for result in results:
        assert result.function_error == "Unhandled"
        doc = document(result)
        assert (doc["errorType"], doc["errorMessage"], doc.get("requestId")) == (
            "Exception", "Runtime startup fails", ""), [r.payload[:150] for r in results]


# -- concurrency --------------------------------------------------------------------------------


def test_concurrent_invocations_run_on_distinct_workers(invoker: Invoker,
                                                        make_function: MakeFunction) -> None:
    name = make_function("sleeper.handler")
    count = 4
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda i: invoker.call(name, {"seconds": 0.3, "id": i}),
                                range(count)))
    assert [result["id"] for result in results] == list(range(count))
    assert len({result["pid"] for result in results}) == count


def test_invoke_is_thread_safe(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("echo.handler")
    threads, calls = 8, 50
    barrier = threading.Barrier(threads)

    def run(thread: int) -> list[tuple[dict, object, str]]:
        barrier.wait()
        out = []
        for i in range(calls):
            event = {"thread": thread, "i": i, "nonce": uuid.uuid4().hex}
            result = invoker.invoke(name, event)
            out.append((event, result.function_error or document(result), result.request_id))
        return out

    with ThreadPoolExecutor(threads) as pool:
        outcomes = [item for items in pool.map(run, range(threads)) for item in items]
    assert len(outcomes) == threads * calls
    for event, returned, _ in outcomes:
        assert returned == event
    assert len({rid for _, _, rid in outcomes}) == threads * calls
    assert invoker.meter(name)["invocations"] == threads * calls


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("max_workers", [None, 4])
def test_ainvoke_concurrently(make_invoker: MakeInvoker, make_function: MakeFunction,
                              loop: str, max_workers: int | None) -> None:
    invoker = make_invoker(max_workers=max_workers)
    name = make_function("echo.handler", invoker=invoker)
    events = [{"task": i, "nonce": uuid.uuid4().hex} for i in range(32)]

    async def main() -> list:
        return await asyncio.wait_for(
            asyncio.gather(*(invoker.ainvoke(name, event) for event in events)), 30)

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        results = runner.run(main())
    assert [document(result) for result in results] == events
    assert len({result.request_id for result in results}) == len(events)


def test_ainvoke_and_threads_together(invoker: Invoker, make_function: MakeFunction) -> None:
    """A thread waiting in invoke and an event loop awaiting share one socket."""
    name = make_function("echo.handler")

    def in_thread(thread: int) -> list:
        return [invoker.call(name, {"thread": thread, "i": i}) for i in range(30)]

    async def main() -> list:
        return await asyncio.gather(*(invoker.ainvoke(name, {"task": i}) for i in range(30)))

    with ThreadPoolExecutor(2) as pool:
        threaded = [pool.submit(in_thread, t) for t in range(2)]
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            awaited = runner.run(asyncio.wait_for(main(), 30))
        for t, future in enumerate(threaded):
            assert future.result(30) == [{"thread": t, "i": i} for i in range(30)]
    assert [document(result) for result in awaited] == [{"task": i} for i in range(30)]


# -- lifecycle --------------------------------------------------------------------------------


def test_recycle_makes_the_next_invocation_a_cold_start(invoker: Invoker,
                                                        make_function: MakeFunction) -> None:
    name = make_function("counter.handler")
    first = invoker.call(name)
    second = invoker.invoke(name, log_type="Tail")
    assert document(second) == {"count": 2, "pid": first["pid"]}
    assert report_of(tail_text(second))["init"] is None
    assert invoker.meter(name)["cold_starts"] == 1
    assert invoker.recycle(name) == 1
    third = invoker.invoke(name, log_type="Tail")
    assert document(third)["count"] == 1 and document(third)["pid"] != first["pid"]
    assert report_of(tail_text(third))["init"] is not None
    assert invoker.meter(name)["cold_starts"] == 2
    wait_until(lambda: not alive(first["pid"]), message=f"recycled worker {first['pid']} lives")


def test_recycle_leaves_a_busy_worker_to_finish(make_invoker: MakeInvoker,
                                                make_function: MakeFunction,
                                                tmp_path: Path) -> None:
    invoker = make_invoker(spare_workers=False)  # no idle spare: the busy worker is all
    name = make_function("gate.handler", timeout_s=60, invoker=invoker)
    opened = tmp_path / "open"
    results = []
    caller = threading.Thread(
        target=lambda: results.append(invoker.invoke(name, {"gate": str(opened)})))
    caller.start()
    wait_until(lambda: invoker.meter(name)["concurrent"] == 1)
    assert invoker.recycle(name) == 0
    opened.touch()
    caller.join()
    assert results[0].payload == b'"through"'


@pytest.mark.parametrize("prefork", [True, False])
def test_where_init_runs(invoker: Invoker, make_function: MakeFunction, prefork: bool) -> None:
    name = make_function("slow_init.handler", prefork=prefork)
    first = invoker.invoke(name, log_type="Tail")
    seen = document(first)
    if prefork:  # imported once by the template; the worker is a fork of it
        assert seen["imported_by"] != seen["pid"]
    else:  # imported by the worker itself
        assert seen["imported_by"] == seen["pid"]
    assert report_of(tail_text(first))["init"] is not None
    assert invoker.call(name) == seen  # warm: same worker, same module
    invoker.recycle(name)
    fresh = invoker.call(name)
    assert fresh["pid"] != seen["pid"]
    if prefork:  # a new fork of the same template: Init is not run again
        assert (fresh["imported_by"], fresh["imported_at_ns"]) == (
            seen["imported_by"], seen["imported_at_ns"])
    else:  # the new worker runs Init itself
        assert fresh["imported_by"] == fresh["pid"]
        assert fresh["imported_at_ns"] > seen["imported_at_ns"]


def test_init_failure_without_prefork(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("init_raises.handler", prefork=False)
    results = [invoker.invoke(name) for _ in range(3)]
    for result in results:
        assert result.function_error == "Unhandled"
        doc = document(result)
        assert (doc["errorType"], doc["errorMessage"], doc.get("requestId")) == (
            "Exception", "Runtime startup fails", ""), [r.payload[:150] for r in results]
    name = make_function("counter.handler", prefork=False)
    assert [invoker.call(name)["count"] for _ in range(3)] == [1, 2, 3]


def test_delete_function_fails_waiting_invocations_and_frees_workers(
        make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    invoker = make_invoker(max_workers=1)
    name = make_function("sleeper.handler", invoker=invoker, timeout_s=60)

    async def scenario(sock: object, path: str) -> tuple:
        loop = asyncio.get_running_loop()
        running = asyncio.create_task(
            invoker.ainvoke(name, {"seconds": 60, "notify": path}))
        worker = int(await asyncio.wait_for(loop.sock_recv(sock, 64), 15))  # it runs
        waiting = asyncio.create_task(invoker.ainvoke(name, {"id": "queued"}))
        # Callbacks run in order: the task's first step (which submits the invocation,
        # queued behind the busy worker) runs before the deletion.
        loop.call_soon(invoker.delete_function, name)
        results = await asyncio.wait_for(asyncio.gather(running, waiting), 15)
        return worker, results

    with notify_socket() as (sock, path):
        sock.setblocking(False)
        with asyncio.Runner() as runner:
            worker, (running, waiting) = runner.run(scenario(sock, path))
    for result in (running, waiting):
        assert result.function_error == "Unhandled"
        assert document(result) == {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {result.request_id} Error: the function was deleted",
        }
    with pytest.raises(ResourceNotFoundException):
        invoker.invoke(name)
    wait_until(lambda: not alive(worker), message=f"worker {worker} outlived its function")
    wait_until(lambda: not descendants(os.getpid()),
               message=lambda: describe(descendants(os.getpid())))


def test_close_stops_every_process(make_invoker: MakeInvoker,
                                   make_function: MakeFunction, subreaper: None) -> None:
    invoker = make_invoker()
    names = [make_function("sleeper.handler", invoker=invoker) for _ in range(2)]
    with ThreadPoolExecutor(4) as pool:
        pids = set(pool.map(lambda i: invoker.call(names[i % 2], {"seconds": 0.2})["pid"],
                            range(4)))
    ours = descendants(os.getpid())
    assert pids <= ours and len(ours) > len(pids)  # workers and their templates
    invoker.close()
    # Every one has ended, and was reaped by its parent, when close() returns.  (As a
    # subreaper, this process adopts a worker orphaned by its template: it would show.)
    left = descendants(os.getpid(), include_zombies=True)
    assert not left, describe(left)
    assert not [pid for pid in ours if alive(pid)]
    assert not os.path.exists(invoker.state_dir)
    invoker.close()  # idempotent


def test_close_fails_an_invocation_in_flight(make_invoker: MakeInvoker,
                                             make_function: MakeFunction, subreaper: None) -> None:
    invoker = make_invoker()
    name = make_function("sleeper.handler", invoker=invoker, timeout_s=60)
    with notify_socket() as (sock, path), ThreadPoolExecutor(1) as pool:
        future = pool.submit(invoker.invoke, name, {"seconds": 60, "notify": path})
        worker = int(sock.recv(64))
        invoker.close()
        result = future.result(15)
    assert result.function_error == "Unhandled"
    assert document(result)["errorType"] == "Runtime.ExitError"
    left = descendants(os.getpid(), include_zombies=True)  # an orphaned worker is adopted
    assert not left, describe(left)
    assert not alive(worker)


_FRONT_END = textwrap.dedent("""
    import json, sys, threading
    from concurrent.futures import ThreadPoolExecutor
    from fastinvoke import FunctionConfig, Invoker

    functions, notify = sys.argv[1], sys.argv[2]
    invoker = Invoker(sandbox=False)  # its handler notifies a host socket
    invoker.create_function(FunctionConfig(name="s", handler="sleeper.handler",
                                           code=functions, timeout_s=600))
    invoker.create_function(FunctionConfig(name="p", handler="pid.handler", code=functions))
    with ThreadPoolExecutor(3) as pool:
        pids = set(pool.map(lambda i: invoker.call("s", {"seconds": 0.2})["pid"], range(3)))
    pids.add(invoker.call("p"))
    # One invocation is still running when the front-end dies.
    threading.Thread(target=invoker.invoke, args=("s", {"seconds": 600, "notify": notify}),
                     daemon=True).start()
    print("READY", json.dumps({"pids": sorted(pids), "state_dir": invoker.state_dir}),
          flush=True)
    sys.stdin.read()
""")


def test_killing_the_front_end_leaves_no_worker() -> None:
    with notify_socket() as (sock, path):
        front_end = subprocess.Popen(
            [sys.executable, "-c", _FRONT_END, FUNCTIONS, path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": ROOT}, start_new_session=True,
        )
        processes: set[int] = set()
        state_dir = None
        try:
            line = read_line(front_end)
            assert line.startswith(b"READY "), line
            ready = json.loads(line[6:])
            state_dir = ready["state_dir"]
            busy = int(sock.recv(64))
            processes = descendants(front_end.pid)  # templates and workers
            workers = set(ready["pids"]) | {busy}
            assert workers <= processes and len(processes) >= len(workers) + 2
            front_end.kill()
            assert front_end.wait() == -signal.SIGKILL
            wait_until(lambda: not any(alive(pid) for pid in processes), timeout=10,
                       message=lambda: "left alive: " + describe(
                           {pid for pid in processes if alive(pid)}))
        finally:
            front_end.kill()
            front_end.wait()
            front_end.stdin.close()
            front_end.stdout.close()
            kill_all(processes)
            if state_dir is not None:
                shutil.rmtree(state_dir, ignore_errors=True)


def test_an_environment_that_cannot_start_fails_its_invocations_and_heals_later(
        invoker: Invoker, tmp_path: Path) -> None:
    """The code directory vanishes and the template dies: the next invocation cannot even
    start a template.  It fails in Lambda's shape, saying why; the pool (and the thread that
    heals it) goes on, and once the code is back the function runs again."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "ok.py").write_text("def handler(event, context):\n    return 'ok'\n")
    invoker.create_function(FunctionConfig(name="fragile", handler="ok.handler",
                                           code=str(code)))
    assert invoker.call("fragile") == "ok"
    template = invoker._functions.pool("fragile").template
    shutil.rmtree(code)
    template.kill()  # its workers die with it; wait until the pool has seen it end
    wait_until(lambda: invoker._functions.pool("fragile").state == "dead")
    result = invoker.invoke("fragile")
    document = json.loads(result.payload)
    assert result.function_error == "Unhandled"
    assert document["errorType"] == "Runtime.Unknown"
    assert str(code) in document["errorMessage"]
    code.mkdir()
    (code / "ok.py").write_text("def handler(event, context):\n    return 'ok'\n")
    assert invoker.call("fragile") == "ok"
