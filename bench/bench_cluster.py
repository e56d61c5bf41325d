"""Scale-out on Ray: what reaching workers on other nodes costs, against the same work
done locally, measured in the same run.

Each contender starts its own local Ray cluster on loopback (one machine: the nodes share
its 2 cores, so these figures measure the remote hop's overhead, not scaling): a head
offering no CPU, where the front-end runs, and two nodes offering 1 CPU each, so that the
benchmark's two 1,769 MB workers (a full vCPU each) land one per node, both remote.
``bench/README.md`` says how to run the same contenders on a real multi-machine cluster
(``FASTINVOKE_BENCH_RAY_ADDRESS``).

* latency: a harness's synchronous loop over the ZeroMQ endpoint of ``fastinvoke serve``
  with local workers (baseline), then with remote ones; and the embedded ``invoke()``
  with remote workers.
* throughput: 64 invocations in flight through ``ainvoke`` on uvloop, two workers,
  local (baseline) or one on each Ray node: to the last answer, and to the last of their
  log lines committed (the front-end writes them on a thread of its own, which a local
  pool outruns for a while: ``LogStore``'s backlog); and the machine's CPU per
  invocation, those lines' writing included.
* first answer: from ``create_function`` to the first answer (deploy, Init, placement,
  fork) on a running cluster; and a new worker's first answer on a running agent
  (``recycle``, then a call: a fork where the reservation is), each against the local
  figure (without spare workers, so that both time a fork).
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

from ._skip import Skipped
from .bench_coldstart import fork_cold_starts, summary
from .bench_latency import FUNCTIONS_DIR, _time_calls
from .bench_peers import zmq_latency
from .bench_throughput import ainvoke_all, check_workers, warm_workers
from .data import ADD_EVENT, ADD_RESULT, MEMORY_MB, WORKERS, Sizes, add_answers, add_events

_ADDRESS = "FASTINVOKE_BENCH_RAY_ADDRESS"  # a real cluster's, instead of a local one
# A local cluster's nodes all on 127.0.0.1 (else Linux binds them to the host's address);
# Ray reads it when it is imported, in this process and in the servers it starts.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@contextlib.contextmanager
def ray_cluster() -> Iterator[str]:
    """The address of a Ray cluster: ``$FASTINVOKE_BENCH_RAY_ADDRESS``, or a local one on
    loopback (a head with no CPU to reserve, two nodes of 1 CPU), started here and shut
    down after."""
    if os.environ.get(_ADDRESS):
        yield os.environ[_ADDRESS]
        return
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        raise Skipped("Ray is not installed: pip install -e '.[ray]'") from None
    small = 80 * 1024 * 1024
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "memory": 0, "object_store_memory": small,
        "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1, memory=4 << 30, object_store_memory=small)
    cluster.wait_for_nodes()
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


def _invoker(**options: Any) -> Any:
    from fastinvoke import FunctionConfig, Invoker

    inv = Invoker(max_workers=WORKERS, **options)
    inv.create_function(FunctionConfig(name="add", handler="add.lambda_handler",
                                       code=FUNCTIONS_DIR, memory_mb=MEMORY_MB))
    return inv


# -- latency ------------------------------------------------------------------------------

def zmq_local(sizes: Sizes) -> dict[str, Any]:
    return zmq_latency(sizes)


def zmq_remote(sizes: Sizes) -> dict[str, Any]:
    with ray_cluster() as address:
        return zmq_latency(sizes, "--ray-address", address)


def embedded_remote(sizes: Sizes) -> dict[str, Any]:
    with ray_cluster() as address, _invoker(ray_address=address) as inv:
        invoke = inv.invoke
        return _time_calls(lambda: invoke("add", ADD_EVENT).payload, ADD_RESULT, sizes,
                           tree_cpu=False)


# -- throughput ---------------------------------------------------------------------------

def _throughput(sizes: Sizes, **options: Any) -> dict[str, Any]:
    import uvloop

    events = add_events(sizes.throughput_calls)
    answers = add_answers(events)
    results: list[bytes | None] = [None] * len(events)
    with _invoker(**options) as inv:
        warm = [ADD_EVENT] * 256
        warm_workers(inv, lambda: uvloop.run(ainvoke_all(inv, "add", warm, [None] * 256)))
        # log_events flushes the log store (LIMIT 0 reads nothing): first the warm-up's
        # lines, so that none is written during the timed run, then the timed run's.
        inv.log_events("add", limit=0)
        busy_started = _machine_busy_ns()
        elapsed = uvloop.run(ainvoke_all(inv, "add", events, results))
        started = time.perf_counter_ns()
        inv.log_events("add", limit=0)
        stored = elapsed + time.perf_counter_ns() - started
        busy_ns = _machine_busy_ns() - busy_started  # its log lines' writing included
        check_workers(inv)
        nodes = inv.placement("add")
    wrong = sum(result != answer for result, answer in zip(results, answers, strict=True))
    if wrong:
        raise AssertionError(f"{wrong} of {len(results)} answers are wrong")
    cpu_ns = busy_ns / len(events)
    # What the same CPU per invocation would allow with every core busy: the path's cost,
    # apart from how well its processes' wake-ups keep the cores busy.
    full_use = os.cpu_count() * 1e9 / cpu_ns
    return {"metrics": {"inv_per_s": len(events) / (elapsed / 1e9),
                        "inv_per_s_stored": len(events) / (stored / 1e9),
                        "cpu_us_per_call": cpu_ns / 1e3},
            "samples": len(events),
            "checked": f"workers by node: {sorted(nodes.values())}; the machine's CPU busy "
                       f"{busy_ns / stored:.0%} of a core; at full use of its "
                       f"{os.cpu_count()} cores, {full_use:,.0f} inv/s"}


def _machine_busy_ns() -> int:
    """CPU time every core of this machine has spent busy (``/proc/stat``: all but idle
    and iowait), in ns: everything a local cluster runs, which is not all this process's
    descendants, and Ray may start processes meanwhile.  On a real cluster
    (``FASTINVOKE_BENCH_RAY_ADDRESS``) it is the front-end's machine alone."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")



def throughput_local(sizes: Sizes) -> dict[str, Any]:
    return _throughput(sizes)


def throughput_remote(sizes: Sizes) -> dict[str, Any]:
    with ray_cluster() as address:
        outcome = _throughput(sizes, ray_address=address)
    if "[1, 1]" not in outcome["checked"]:
        raise AssertionError(f"not one worker per node: {outcome['checked']}")
    return outcome


# -- first answers ------------------------------------------------------------------------

def _created_to_answered(count: int, **options: Any) -> list[int]:
    """ns from ``create_function`` to the first answer, for ``count`` new functions."""
    from fastinvoke import FunctionConfig, Invoker

    samples = []
    with Invoker(**options) as inv:
        gc.collect()
        for number in range(count):
            started = time.perf_counter_ns()
            inv.create_function(FunctionConfig(name=f"add{number}", handler="add.lambda_handler",
                                               code=FUNCTIONS_DIR, memory_mb=MEMORY_MB))
            payload = inv.invoke(f"add{number}", ADD_EVENT).payload
            samples.append(time.perf_counter_ns() - started)
            if payload != ADD_RESULT:
                raise AssertionError(f"wrong answer {payload!r}")
            inv.delete_function(f"add{number}")
    return samples


def created_local(sizes: Sizes) -> dict[str, Any]:
    return summary(_created_to_answered(sizes.coldstarts // 4))


def created_remote(sizes: Sizes) -> dict[str, Any]:
    with ray_cluster() as address:
        samples = _created_to_answered(sizes.coldstarts // 4, ray_address=address)
    # The first function's time includes no more than the others' (the node processes
    # start with the Invoker); it is kept for the record.
    return {**summary(samples), "checked": f"first function {samples[0] / 1e6:.0f} ms"}


def new_worker_local(sizes: Sizes) -> dict[str, Any]:
    # No spare: a spare forked while recycle() waits would answer without a fork in the
    # timed call (a remote slot has none), and this group compares forks.
    return summary(fork_cold_starts(sizes.coldstarts, {"spare_workers": False}))


def new_worker_remote(sizes: Sizes) -> dict[str, Any]:
    with ray_cluster() as address:
        samples = fork_cold_starts(sizes.coldstarts, {"ray_address": address})
    p90_ms = statistics.quantiles(samples, n=10)[-1] / 1e6
    return {**summary(samples), "checked": f"p90 {p90_ms:.1f} ms"}
