"""Scale-out on Ray, on a real 2-node Ray cluster on loopback (conftest's ``ray_cluster``):
placement by memory, Ray's counting of reservations, warm state on a remote worker, a
node that joins, a node lost under load, and nothing left on any node after close.  The
contract suite runs against the same back-end (test_contract's ``ray`` front-end)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import cluster_processes, cmdline, own_runtime_processes
from helpers import MakeFunction, MakeInvoker, descendants, document, wait_until
from http_server import serving
from prometheus_client.parser import text_string_to_metric_families

from fastinvoke import Invoker
from fastinvoke.cluster.link import LOST_AFTER_S
from fastinvoke.errors import InvalidParameterValueException, ServiceException

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[test]'")

from fastinvoke.cluster.placement import worker_resources  # noqa: E402 - needs Ray's presence

pytestmark = pytest.mark.slow
GiB = 1 << 30


def node_with_memory(memory: int) -> str:
    """The id of the cluster's node offering ``memory`` bytes to reserve."""
    return next(node["NodeID"] for node in ray.nodes()
                if node["Alive"] and node["Resources"].get("memory") == memory)


def runtime_processes(pids: set[int]) -> set[int]:
    """Those of ``pids`` that are templates or workers (a worker is its template's fork)."""
    return {pid for pid in pids if b"fastinvoke.runtime.template" in cmdline(pid)}


def test_reservations_round_down_to_rays_precision() -> None:
    assert worker_resources(128, 1.0) == (0.0723, 128 << 20)  # 128 / 1769 = 0.07235...
    assert worker_resources(1769, 1.0) == (1.0, 1769 << 20)
    assert worker_resources(3538, 2.0) == (1.0, 1769 << 20)
    assert worker_resources(10240, 4.0) == (1.4471, 2560 << 20)  # 1.44714...


def test_a_worker_goes_where_its_memory_fits(make_cluster_invoker: MakeInvoker,
                                             make_function: MakeFunction) -> None:
    invoker = make_cluster_invoker()
    name = make_function("counter.handler", invoker=invoker, memory_mb=3072)
    assert document(invoker.invoke(name, {}))["count"] == 1
    # The head offers 512 MiB, the other node 6 GiB: only the other can hold 3 GB.
    assert invoker.placement(name) == {node_with_memory(6 * GiB): 1}


def test_a_remote_worker_keeps_its_state(make_cluster_invoker: MakeInvoker,
                                         make_function: MakeFunction) -> None:
    invoker = make_cluster_invoker()
    name = make_function("counter.handler", invoker=invoker)
    answers = [document(invoker.invoke(name, {})) for _ in range(5)]
    assert [answer["count"] for answer in answers] == [1, 2, 3, 4, 5]
    assert len({answer["pid"] for answer in answers}) == 1
    meter = invoker.meter(name)
    assert (meter["invocations"], meter["cold_starts"], meter["errors"]) == (5, 1, 0)
    reports = [record.message for record in invoker.logs(name)]
    assert "Init Duration" in reports[0]
    assert not any("Init Duration" in report for report in reports[1:])


def niceness(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        return int(file.read().rpartition(")")[2].split()[16])


def test_remote_workers_run_at_the_nodes_priority_not_rays(
        make_cluster_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    """Ray starts its workers, the node agents among them, at niceness 15; the node
    process and the workers it forks return to the raylet's (the test's own here)."""
    invoker = make_cluster_invoker()
    name = make_function("counter.handler", invoker=invoker, memory_mb=640)  # not the head
    pid = document(invoker.invoke(name, {}))["pid"]
    ancestors = []
    while pid > 1:
        ancestors.append(pid)
        with open(f"/proc/{pid}/stat") as file:
            pid = int(file.read().rpartition(")")[2].split()[1])
    agent = next(pid for pid in ancestors if cmdline(pid).startswith(b"ray::NodeAgent"))
    assert niceness(agent) > os.getpriority(os.PRIO_PROCESS, 0)  # as Ray made it
    below_agent = ancestors[:ancestors.index(agent)]  # the worker up to the node process
    assert [niceness(pid) for pid in below_agent] == \
        [os.getpriority(os.PRIO_PROCESS, 0)] * len(below_agent)


def test_a_function_no_node_can_hold_is_refused(make_cluster_invoker: MakeInvoker,
                                                make_function: MakeFunction) -> None:
    invoker = make_cluster_invoker()
    with pytest.raises(InvalidParameterValueException,
                       match=r"reserves 5\.7885 CPU and 10240 MB .* no Ray node has that much "
                             r"\(2 CPU / 6144 MB, 2 CPU / 512 MB\)"):
        make_function("add.handler", invoker=invoker, memory_mb=10240)
    # Overcommitted 4 times, its worker reserves 1.4471 CPU and 2560 MB: the big node.
    overcommitted = make_cluster_invoker(overcommit=4.0)
    name = make_function("add.handler", invoker=overcommitted, memory_mb=10240)
    assert document(overcommitted.invoke(name, {"a": 1, "b": 2})) == {"sum": 3}


def test_reservations_count_as_ray_counts_them(ray_cluster: Any,
                                               make_cluster_invoker: MakeInvoker,
                                               make_function: MakeFunction,
                                               tmp_path: Path) -> None:
    """A 128 MB worker reserves 0.0723 CPU and 128 MiB: the head holds 4 (its 512 MiB),
    the other node 27 (its 2 CPUs); the 32nd and 33rd invocations wait for room."""
    invoker = make_cluster_invoker()
    name = make_function("gate.handler", invoker=invoker, timeout_s=120)
    gate = tmp_path / "gate"
    for _ in range(33):
        invoker.invoke(name, {"gate": str(gate)}, invocation_type="Event")
    expected = {node_with_memory(512 << 20): 4, node_with_memory(6 * GiB): 27}
    wait_until(lambda: invoker.placement(name) == expected, timeout=60,
               message=lambda: f"placement {invoker.placement(name)}")
    assert invoker.event_stats(name)["running"] == 33  # 31 run, 2 wait for a worker
    # The head is this process's own node: its 4 workers (and their template) are this
    # process's, reached over the shared-memory hop; the other node's are its node
    # process's, reached over ZeroMQ.
    node_process = next(pid for pid in cluster_processes(ray_cluster)
                        if b"fastinvoke.cluster.node" in cmdline(pid))
    wait_until(lambda: (len(own_runtime_processes()),
                        len(runtime_processes(descendants(node_process)))) == (1 + 4, 1 + 27),
               timeout=60)
    gate.touch()
    assert invoker.wait_for_events(name, timeout_s=60)
    assert invoker.meter(name)["invocations"] == 33


def test_a_node_that_joins_is_used_and_one_removed_is_not(
        ray_cluster: Any, make_cluster_invoker: MakeInvoker, make_function: MakeFunction,
        tmp_path: Path) -> None:
    invoker = make_cluster_invoker()
    create = functools.partial(make_function, "sleeper.handler", invoker=invoker, name="big",
                               memory_mb=6500, timeout_s=60)  # 3.6744 CPU, 6500 MB
    with pytest.raises(InvalidParameterValueException, match="no Ray node has that much"):
        create()
    node = ray_cluster.add_node(4, 8 * GiB)
    try:
        def created() -> bool:
            try:
                create()
            except InvalidParameterValueException:
                return False
            return True

        wait_until(created, timeout=30, interval=0.2)
        assert document(invoker.invoke("big", {"id": 1}))["id"] == 1
        assert invoker.placement("big") == {node_with_memory(8 * GiB): 1}
        # The node is removed while a call runs there: the call fails, and the next one
        # is told that no node is left to hold the function.
        notify = str(tmp_path / "notify")
        running = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        running.bind(notify)
        failed: list[ServiceException] = []

        def call() -> None:
            with pytest.raises(ServiceException) as caught:
                invoker.invoke("big", {"seconds": 30, "notify": notify})
            failed.append(caught.value)

        caller = threading.Thread(target=call)
        caller.start()
        running.recv(64)
        running.close()
        ray_cluster.remove_node(node)
        node = None
        caller.join(timeout=30)
        assert failed and "was lost" in failed[0].message
        after = invoker.invoke("big", {})
        assert after.function_error == "Unhandled"
        assert "no Ray node has that much" in document(after)["errorMessage"]
    finally:
        if node is not None:
            ray_cluster.remove_node(node)


def test_a_lost_node_fails_its_calls_and_reruns_its_events(
        make_cluster_invoker: MakeInvoker, make_function: MakeFunction,
        tmp_path: Path) -> None:
    """The other node's process dies while invocations run there (its agent is killed,
    and Ray restarts it): each synchronous call fails with ServiceException well within
    its timeout, none hangs; every Event invocation runs again and succeeds, none is
    lost; the pool heals."""
    invoker = make_cluster_invoker()
    # 640 MB: more than the head's 512 MiB, so every worker is on the other node (5 fit).
    name = make_function("sleeper.handler", invoker=invoker, timeout_s=60, memory_mb=640)
    record = tmp_path / "succeeded.jsonl"
    invoker.event_invoke_config(name, on_success=f"file://{record}")
    notify = str(tmp_path / "notify")
    running = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    running.bind(notify)
    running.settimeout(60)
    outcomes: list[Any] = []

    def call() -> None:
        started = time.monotonic()
        try:
            outcomes.append(invoker.invoke(name, {"seconds": 30, "notify": notify}))
        except ServiceException as exc:
            outcomes.append((exc, time.monotonic() - started))

    callers = [threading.Thread(target=call) for _ in range(3)]
    for caller in callers:
        caller.start()
    for number in range(2):
        invoker.invoke(name, {"seconds": 1, "id": number, "notify": notify},
                       invocation_type="Event")
    for _ in range(5):
        running.recv(64)  # every one of them runs on a worker now (open: re-runs say so too)
    assert invoker.placement(name) == {node_with_memory(6 * GiB): 5}
    agents = [actor for actor in ray.util.list_named_actors(all_namespaces=True)
              if actor["name"].startswith("fastinvoke-agent-")]
    assert len(agents) == 1  # the front-end's own node has none: its workers are its own
    ray.kill(ray.get_actor(agents[0]["name"], namespace=agents[0]["namespace"]),
             no_restart=False)
    for caller in callers:
        caller.join(timeout=60)
    assert not any(caller.is_alive() for caller in callers)
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert isinstance(outcome, tuple), f"answered instead of failing: {outcome}"
        error, elapsed = outcome
        assert "was lost" in error.message and elapsed < 30
    assert invoker.wait_for_events(name, timeout_s=60)
    wait_until(lambda: record.exists() and len(record.read_text().splitlines()) == 2,
               timeout=30)
    ids = sorted(json.loads(line)["responsePayload"]["id"]
                 for line in record.read_text().splitlines())
    assert ids == [0, 1]
    assert invoker.event_stats(name)["redelivered"] == 2
    running.close()
    # Healed: a new call runs on a new worker.
    assert document(invoker.invoke(name, {"id": "after"}))["id"] == "after"


def test_close_leaves_nothing_on_any_node(ray_cluster: Any,
                                          make_cluster_invoker: MakeInvoker,
                                          make_function: MakeFunction) -> None:
    invoker = make_cluster_invoker()
    names = [make_function("counter.handler", invoker=invoker, memory_mb=memory)
             for memory in (128, 3072)]
    for name in names:
        invoker.invoke(name, {})
    assert cluster_processes(ray_cluster)  # the other node's process, agent, workers...
    invoker.close()
    wait_until(lambda: not cluster_processes(ray_cluster), timeout=30)


def test_a_killed_worker_is_reported_as_locally(make_cluster_invoker: MakeInvoker,
                                                make_function: MakeFunction) -> None:
    invoker = make_cluster_invoker()
    name = make_function("counter.handler", invoker=invoker)
    pid = document(invoker.invoke(name, {}))["pid"]
    os.kill(pid, signal.SIGKILL)
    # The node reports the worker's end; the next call is a new worker's cold start.
    wait_until(lambda: document(invoker.invoke(name, {}))["pid"] != pid, timeout=10)
    assert invoker.meter(name)["cold_starts"] == 2


def test_serve_runs_its_functions_on_the_cluster(ray_cluster: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``fastinvoke serve`` takes the cluster from RAY_ADDRESS (Ray's own convention);
    boto3 invokes unchanged, and /metrics says on which node the workers are."""
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    with serving(tmp_path, "--no-sandbox") as server:
        client = server.client()
        answer = client.invoke(FunctionName="echo", Payload=b'{"on": "ray"}')
        assert json.loads(answer["Payload"].read()) == {"on": "ray"}
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        nodes = {sample.labels["node"]: sample.value
                 for family in text_string_to_metric_families(text)
                 for sample in family.samples
                 if sample.name == "fastinvoke_workers" and sample.labels["function"] == "echo"}
        assert nodes and all(re.fullmatch("[0-9a-f]{56}", node) for node in nodes)
        assert sum(nodes.values()) == 1
        client.close()
    wait_until(lambda: not cluster_processes(ray_cluster), timeout=30,
               message=lambda: f"left after the server stopped: {cluster_processes(ray_cluster)}")


def test_an_answer_is_not_held_behind_a_long_queue(make_cluster_invoker: MakeInvoker,
                                                   make_function: MakeFunction,
                                                   tmp_path: Path) -> None:
    """A node sends its answers in bursts while invocations queue behind its workers, but
    never holds one back for long: a quick invocation's answer comes back while the ones
    queued behind it on the same worker cannot end yet (they wait for a gate the test
    opens only once that answer is in)."""
    invoker = make_cluster_invoker(max_workers=1)
    name = make_function("gate.handler", invoker=invoker, memory_mb=640)
    gate = tmp_path / "gate"

    async def run() -> None:
        quick = [asyncio.ensure_future(invoker.ainvoke(name, {"gate": "/"})) for _ in range(2)]
        gated = [asyncio.ensure_future(invoker.ainvoke(name, {"gate": str(gate)}))
                 for _ in range(10)]
        # quick[0] opens the slot's lanes; quick[1] then ends with the 10 gated ones
        # sent after it, 9 of them queued behind the worker at the node.
        answers = await asyncio.wait_for(asyncio.gather(*quick), timeout=10)
        assert [document(answer) for answer in answers] == ["through", "through"]
        gate.touch()
        assert [document(answer) for answer in await asyncio.gather(*gated)] == ["through"] * 10

    asyncio.run(run())
    assert invoker.meter(name)["invocations"] == 12


def test_a_backlog_streams_through_remote_workers(make_cluster_invoker: MakeInvoker,
                                                  make_function: MakeFunction) -> None:
    """64 in flight on 2 remote workers: the backlog waits partly at the node (each busy
    worker's lanes), every answer is right and in its place (a batch's too), each
    invocation metered once; recycling then stops both workers and returns once they
    have ended."""
    invoker = make_cluster_invoker(max_workers=2)
    name = make_function("add.handler", invoker=invoker, memory_mb=640)  # the other node
    events = [{"a": number, "b": 1} for number in range(400)]

    async def run() -> list[Any]:
        async def caller(indices: range) -> list[tuple[int, Any]]:
            return [(i, document(await invoker.ainvoke(name, events[i]))) for i in indices]

        slices = await asyncio.gather(*(caller(range(k, 400, 64)) for k in range(64)))
        return [answer for _, answer in sorted(pair for part in slices for pair in part)]

    assert asyncio.run(run()) == [{"sum": number + 1} for number in range(400)]
    batch = invoker.invoke_many(name, events[:100], concurrency=8)
    assert [document(result) for result in batch] == [{"sum": n + 1} for n in range(100)]
    meter = invoker.meter(name)
    assert (meter["invocations"], meter["cold_starts"], meter["errors"]) == (500, 2, 0)
    assert invoker.placement(name) == {node_with_memory(6 * GiB): 2}
    assert invoker.recycle(name) == 2
    invoker.invoke(name, {"a": 1, "b": 1})
    assert invoker.meter(name)["cold_starts"] == 3


def test_a_full_cluster_stops_an_idle_worker_of_another_function(
        make_cluster_invoker: MakeInvoker, make_function: MakeFunction,
        caplog: pytest.LogCaptureFixture) -> None:
    """A 3 GB worker reserves 1.7366 CPU: the other node holds one.  With one function's
    worker idle there, the next function's invocation waits for room, the idle worker is
    stopped to make it (as the local memory budget does), and the invocation runs."""
    invoker = make_cluster_invoker()
    first = make_function("add.handler", invoker=invoker, memory_mb=3072)
    second = make_function("add.handler", invoker=invoker, memory_mb=3072)
    big_node = node_with_memory(6 * GiB)
    assert document(invoker.invoke(first, {"a": 1, "b": 1})) == {"sum": 2}
    assert invoker.placement(first) == {big_node: 1}
    assert document(invoker.invoke(second, {"a": 2, "b": 2})) == {"sum": 4}
    assert (invoker.placement(first), invoker.placement(second)) == ({}, {big_node: 1})
    assert f"no room for another worker of {second}" in caplog.text


def test_a_function_with_layers_is_refused_saying_why(make_cluster_invoker: MakeInvoker,
                                                     make_function: MakeFunction,
                                                     tmp_path: Path) -> None:
    """Only a function's code is shipped to the nodes: layers are refused, not lost."""
    invoker = make_cluster_invoker()
    with pytest.raises(InvalidParameterValueException, match="does not ship to Ray nodes"):
        make_function("echo.handler", invoker=invoker, layers=[str(tmp_path)])


def test_versions_and_aliases_run_on_the_cluster(make_cluster_invoker: MakeInvoker,
                                                 make_function: MakeFunction) -> None:
    """A version is a pool of its own on the nodes, with its own copy of the code."""
    invoker = make_cluster_invoker()
    name = make_function("counter.handler", invoker=invoker)
    invoker.publish_version(name)
    invoker.create_alias(name, "live", "1")
    assert document(invoker.invoke(name, {}))["count"] == 1
    answer = invoker.invoke(f"{name}:live", {})
    assert answer.executed_version == "1" and document(answer)["count"] == 1
    assert document(invoker.invoke(name, {}, qualifier="1"))["count"] == 2
    assert sum(invoker.placement(name, "1").values()) == 1
    assert invoker.meter(name, "1")["invocations"] == 2


# -- the reading of the nodes' answers, lent to an event loop --------------------------------

def gated_function(make_cluster_invoker: MakeInvoker,
                   make_function: MakeFunction) -> tuple[Invoker, str, Any]:
    """An invoker, a function on its 6 GiB node that answers once its event's gate file
    exists, and the invoker's relay."""
    invoker = make_cluster_invoker()
    name = make_function("gate.handler", invoker=invoker, memory_mb=640)
    return invoker, name, invoker._dispatcher.remote_answers


async def gated_calls_lent(invoker: Invoker, name: str, gate: Path) -> list[asyncio.Future]:
    """Three calls waiting for ``gate``, once the relay has lent the running loop the
    reading of their answers (it hands it over on its own thread; 10 s at most)."""
    gated = [asyncio.ensure_future(invoker.ainvoke(name, {"gate": str(gate)}))
             for _ in range(3)]
    relay, loop = invoker._dispatcher.remote_answers, asyncio.get_running_loop()
    deadline = time.monotonic() + 10
    while relay.lent_to is not loop:
        assert time.monotonic() < deadline, "the relay never lent the reading to the loop"
        await asyncio.sleep(0.001)
    return gated


def test_a_loop_awaiting_answers_reads_them_and_gives_the_reading_back(
        make_cluster_invoker: MakeInvoker, make_function: MakeFunction,
        tmp_path: Path) -> None:
    """While a loop awaits invocations it reads the nodes' answers itself; once it awaits
    none, the relay thread reads them again: a synchronous caller is answered."""
    invoker, name, relay = gated_function(make_cluster_invoker, make_function)
    gate = tmp_path / "gate"

    async def run() -> list[Any]:
        gated = await gated_calls_lent(invoker, name, gate)
        gate.touch()
        return [document(answer) for answer in await asyncio.gather(*gated)]

    assert asyncio.run(run()) == ["through"] * 3
    assert relay.lent_to is None
    assert document(invoker.invoke(name, {"gate": "/"})) == "through"


def test_a_synchronous_call_on_the_loops_thread_is_answered(
        make_cluster_invoker: MakeInvoker, make_function: MakeFunction,
        tmp_path: Path) -> None:
    """invoke() on the thread of the loop that reads the answers blocks that loop: the
    reading goes back to the relay thread first, which answers it and the loop's own."""
    invoker, name, relay = gated_function(make_cluster_invoker, make_function)
    gate = tmp_path / "gate"

    async def run() -> list[Any]:
        gated = await gated_calls_lent(invoker, name, gate)
        assert document(invoker.invoke(name, {"gate": "/"})) == "through"
        assert relay.lent_to is None
        gate.touch()
        return [document(answer) for answer in await asyncio.gather(*gated)]

    assert asyncio.run(run()) == ["through"] * 3
    assert invoker.meter(name)["invocations"] == 4


def test_a_loop_that_stops_with_the_reading_gives_it_back(
        make_cluster_invoker: MakeInvoker, make_function: MakeFunction,
        tmp_path: Path) -> None:
    """A loop that stops running while its calls are outstanding reads no more: the relay
    takes the reading back, so another thread is answered meanwhile, and the stopped
    loop's calls when it runs again."""
    invoker, name, relay = gated_function(make_cluster_invoker, make_function)
    gate = tmp_path / "gate"
    loop = asyncio.new_event_loop()
    try:
        gated = loop.run_until_complete(gated_calls_lent(invoker, name, gate))
        answers: list[Any] = []
        caller = threading.Thread(
            target=lambda: answers.append(document(invoker.invoke(name, {"gate": "/"}))))
        caller.start()
        caller.join(timeout=30)
        assert answers == ["through"]
        assert relay.lent_to is None
        gate.touch()
        done = loop.run_until_complete(asyncio.wait_for(asyncio.gather(*gated), 30))
        assert [document(answer) for answer in done] == ["through"] * 3
    finally:
        loop.close()


def test_a_blocked_loop_with_the_reading_does_not_lose_its_nodes(
        make_cluster_invoker: MakeInvoker, make_function: MakeFunction,
        tmp_path: Path) -> None:
    """A loop that blocks (here in a plain sleep) while it has the reading leaves the
    nodes' beats unread: the relay takes the reading back before the silence would
    declare a node lost, so the calls are answered, not failed."""
    invoker, name, relay = gated_function(make_cluster_invoker, make_function)
    gate = tmp_path / "gate"

    async def run() -> list[Any]:
        gated = await gated_calls_lent(invoker, name, gate)
        gate.touch()
        time.sleep(LOST_AFTER_S * 2)  # noqa: ASYNC251 - the loop blocked, on purpose
        assert relay.lent_to is None
        return [document(answer) for answer in await asyncio.gather(*gated)]

    assert asyncio.run(run()) == ["through"] * 3
    assert invoker.meter(name)["errors"] == 0
