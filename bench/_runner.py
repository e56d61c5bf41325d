"""Child side: run one contender in this fresh process and print one JSON line.

    python -m bench._runner CONTENDER [--quick]

The line is ``{"name", "group", "metrics": {...}, "samples"}`` (and ``"checked"``, what a
contender verified beyond its answers, where it says), or ``{"name", "group",
"skipped": REASON}`` for a contender that cannot run on this machine (``Skipped``).  The
driver parses the last line of stdout; diagnostics go to stderr.  The registry below is
also what the driver iterates over; it imports no contender code until one runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

import msgspec

from ._skip import Skipped
from .data import FULL, QUICK


@dataclass(frozen=True)
class Contender:
    name: str
    group: str
    label: str
    target: str  # "module:function" under bench, imported only in the child
    baseline: bool = False
    needs: str | None = None  # a program that must be installed (else the group is skipped)


CONTENDERS = [
    Contender(
        "latency.raw", "latency", "raw pyzmq DEALER/ROUTER", "bench_latency:raw_zmq", baseline=True
    ),
    Contender(
        "latency.fastinvoke", "latency", "fastinvoke invoke()", "bench_latency:fastinvoke_invoke"
    ),
    Contender(
        "latency.fastinvoke_no_cpu_limit",
        "latency",
        "fastinvoke invoke(), cpu_limits=off",
        "bench_latency:fastinvoke_invoke_unquoted",
    ),
    Contender("latency.ppe", "latency", "ProcessPoolExecutor(1)", "bench_latency:process_pool"),
    Contender(
        "throughput.raw",
        "throughput",
        "raw pyzmq, 1 at a time/worker",
        "bench_throughput:raw_one_at_a_time",
        baseline=True,
    ),
    Contender(
        "throughput.fastinvoke_async",
        "throughput",
        "fastinvoke ainvoke() uvloop",
        "bench_throughput:fastinvoke_async",
    ),
    Contender(
        "throughput.fastinvoke_threads",
        "throughput",
        "fastinvoke invoke() 64 threads",
        "bench_throughput:fastinvoke_threads",
    ),
    Contender(
        "throughput.raw_pipelined",
        "throughput",
        "raw pyzmq pipelined (ceiling)",
        "bench_throughput:raw_pipelined",
    ),
    Contender(
        "coldstart.fresh",
        "coldstart",
        "fresh python process",
        "bench_coldstart:fresh_interpreter",
        baseline=True,
    ),
    Contender(
        "coldstart.fastinvoke",
        "coldstart",
        "fastinvoke fork from template",
        "bench_coldstart:fastinvoke_fork",
    ),
    # Node.js through the Runtime API; ``python -m bench runtimes`` runs both groups.
    Contender(
        "runtimes.python",
        "runtimes.latency",
        "Python add, the local hop",
        "bench_runtimes:python_warm",
        baseline=True,
    ),
    Contender(
        "runtimes.node",
        "runtimes.latency",
        "Node.js add, Runtime API",
        "bench_runtimes:node_warm",
    ),
    Contender(
        "runtimes.node_fresh",
        "runtimes.coldstart",
        "fresh node -e ''",
        "bench_runtimes:node_fresh",
        baseline=True,
    ),
    Contender(
        "runtimes.node_worker",
        "runtimes.coldstart",
        "new Node.js worker, first reply",
        "bench_runtimes:node_new_worker",
    ),
    # Two groups, each against its own baseline; ``python -m bench isolation`` runs both.
    # Event invocations (``python -m bench events``): durability's cost on acceptance, and
    # the drain rate of a backlog against the core's synchronous throughput.
    Contender("events.accept.memory", "events.accept", "Event, in memory, 64 async callers",
              "bench_events:memory_async", baseline=True),
    Contender("events.accept.durable", "events.accept", "Event, durable, 64 async callers",
              "bench_events:durable_async"),
    Contender("events.accept_sync.memory", "events.accept_sync", "Event, in memory, 1 thread",
              "bench_events:memory_sync", baseline=True),
    Contender("events.accept_sync.durable", "events.accept_sync", "Event, durable, 1 thread",
              "bench_events:durable_sync"),
    Contender("events.drain.sync", "events.drain", "sync ainvoke(), 64 in flight",
              "bench_throughput:fastinvoke_async", baseline=True),
    Contender("events.drain.events", "events.drain", "queued Events drained",
              "bench_events:drain"),
    Contender(
        "isolation.silent",
        "isolation.logs",
        "handler prints nothing",
        "bench_isolation:silent",
        baseline=True,
    ),
    Contender(
        "isolation.printing",
        "isolation.logs",
        "handler prints 1 line",
        "bench_isolation:printing",
    ),
    Contender(
        "isolation.no_cgroups",
        "isolation.cgroups",
        "fork, no cgroup",
        "bench_isolation:no_cgroups",
        baseline=True,
    ),
    Contender(
        "isolation.cgroups",
        "isolation.cgroups",
        "fork into memory+CPU cgroup",
        "bench_isolation:cgroups",
    ),
    # The sandbox: every function in its own environment, or not (Invoker(sandbox=False)).
    Contender("sandbox.warm_off", "sandbox.warm", "warm invoke(), no sandbox",
              "bench_sandbox:warm_unsandboxed", baseline=True),
    Contender("sandbox.warm_on", "sandbox.warm", "warm invoke(), sandboxed",
              "bench_sandbox:warm_sandboxed"),
    Contender("sandbox.first_off", "sandbox.first", "new worker's first reply, no sandbox",
              "bench_sandbox:first_reply_unsandboxed", baseline=True),
    Contender("sandbox.first_on", "sandbox.first", "new worker's first reply, sandboxed",
              "bench_sandbox:first_reply_sandboxed"),
    # Scale-out on Ray: workers on the nodes of a 2-node cluster against local ones.
    Contender("cluster.zmq_local", "cluster.latency", "ZeroMQ endpoint (serve), local workers",
              "bench_cluster:zmq_local", baseline=True),
    Contender("cluster.zmq_remote", "cluster.latency", "ZeroMQ endpoint (serve), Ray workers",
              "bench_cluster:zmq_remote"),
    Contender("cluster.embedded_remote", "cluster.latency", "embedded invoke(), Ray workers",
              "bench_cluster:embedded_remote"),
    Contender("cluster.throughput_local", "cluster.throughput",
              "ainvoke() x64 in flight, 2 local workers", "bench_cluster:throughput_local",
              baseline=True),
    Contender("cluster.throughput_remote", "cluster.throughput",
              "ainvoke() x64 in flight, a worker on each of 2 Ray nodes",
              "bench_cluster:throughput_remote"),
    Contender("cluster.created_local", "cluster.created",
              "create_function to first answer, local", "bench_cluster:created_local",
              baseline=True),
    Contender("cluster.created_remote", "cluster.created",
              "create_function to first answer, Ray", "bench_cluster:created_remote"),
    Contender("cluster.new_worker_local", "cluster.new_worker",
              "new worker's first answer, local (no spare)", "bench_cluster:new_worker_local",
              baseline=True),
    Contender("cluster.new_worker_remote", "cluster.new_worker",
              "new worker's first answer, running Ray agent", "bench_cluster:new_worker_remote"),
]

def _peer(group: str, key: str, label: str, target: str, baseline: bool = False) -> Contender:
    return Contender(f"peers.{group}.{key}", f"peers.{group}", label, target, baseline)


# ``python -m bench peers``: fastinvoke is each group's baseline, so every ratio reads
# "times fastinvoke's figure".
CONTENDERS += [
    _peer("latency", "fastinvoke", "fastinvoke invoke()", "bench_latency:fastinvoke_invoke",
          baseline=True),
    _peer("latency", "fastinvoke_http", "fastinvoke HTTP (serve)", "bench_peers:http_latency"),
    _peer("latency", "fastinvoke_zmq", "fastinvoke ZeroMQ (serve), ZmqClient.invoke",
          "bench_peers:zmq_latency"),
    _peer("latency", "rawzmq", "raw pyzmq DEALER/ROUTER (floor)", "bench_latency:raw_zmq"),
    _peer("latency", "unix", "raw Unix socket (floor)", "bench_peers:unix_socket"),
    _peer("latency", "ppe", "ProcessPoolExecutor(1)", "bench_latency:process_pool"),
    _peer("latency", "mp_pool", "multiprocessing.Pool(1).apply", "bench_peers:mp_pool"),
    _peer("latency", "pll_api", "python-lambda-local API", "bench_peers:pll_api"),
    _peer("latency", "pll_cli", "python-lambda-local CLI", "bench_peers:pll_cli"),
    _peer("latency", "ll_api", "lambda-local API, in-process", "bench_peers:ll_api"),
    _peer("latency", "ll_api_path", "lambda-local API, lambdaPath", "bench_peers:ll_api_path"),
    _peer("latency", "ll_cli", "lambda-local CLI", "bench_peers:ll_cli"),
    _peer("throughput", "fastinvoke", "fastinvoke ainvoke() uvloop",
          "bench_throughput:fastinvoke_async", baseline=True),
    _peer("throughput", "fastinvoke_http", "fastinvoke HTTP (serve)",
          "bench_peers:http_throughput"),
    _peer("throughput", "fastinvoke_zmq", "fastinvoke ZeroMQ (serve)",
          "bench_peers:zmq_throughput"),
    _peer("throughput", "rawzmq", "raw pyzmq, 1 at a time/worker",
          "bench_throughput:raw_one_at_a_time"),
    _peer("throughput", "ppe", "ProcessPoolExecutor(2) submit", "bench_peers:ppe_submit"),
    _peer("throughput", "ppe_map", "ProcessPoolExecutor(2) map, chunks", "bench_peers:ppe_map"),
    _peer("throughput", "mp_pool", "multiprocessing.Pool(2) apply_async",
          "bench_peers:mp_pool_async"),
    _peer("throughput", "mp_pool_map", "multiprocessing.Pool(2) map, chunks",
          "bench_peers:mp_pool_map"),
    _peer("throughput", "fastinvoke_many", "fastinvoke invoke_many(), concurrency 2",
          "bench_peers:fastinvoke_many"),
    _peer("throughput", "ll_api", "lambda-local API, in-process", "bench_peers:ll_api_throughput"),
    _peer("coldstart", "fastinvoke", "fastinvoke fork from template",
          "bench_coldstart:fastinvoke_fork", baseline=True),
    _peer("coldstart", "fresh", "fresh python process", "bench_coldstart:fresh_interpreter"),
    _peer("coldstart", "ppe", "new ProcessPoolExecutor(1)", "bench_peers:ppe_cold"),
    _peer("coldstart", "mp_pool", "new multiprocessing.Pool(1)", "bench_peers:mp_pool_cold"),
    _peer("coldstart", "ll_api", "lambda-local API, fresh node", "bench_peers:ll_api_cold"),
    # ``python -m bench idle``: one row, an absolute figure (its own baseline).
    Contender("idle.workers", "idle", "20 idle workers (128 MB), whole tree",
              "bench_idle:idle_workers", baseline=True),
    Contender("http.bare", "http.throughput", "bare uvloop server, fixed 200",
              "bench_http:bare_uvloop", baseline=True, needs="wrk"),
    Contender("http.fastinvoke", "http.throughput", "fastinvoke serve, sync Invoke",
              "bench_http:fastinvoke_serve", needs="wrk"),
    Contender("http.embedded", "http.latency", "embedded Invoker.invoke()",
              "bench_latency:fastinvoke_invoke", baseline=True),
    Contender("http.boto3", "http.latency", "boto3 invoke via fastinvoke serve",
              "bench_http:boto3_invoke"),
    # ``python -m bench api``: an HTTP API route against the Invoke API, same function.
    Contender("api.invoke_latency", "api.latency", "Lambda Invoke API, the route's event",
              "bench_api:invoke_latency", baseline=True),
    Contender("api.route_latency", "api.latency", "HTTP API route (--api-port)",
              "bench_api:route_latency"),
    Contender("api.invoke_throughput", "api.throughput", "Lambda Invoke API, wrk -c64",
              "bench_api:invoke_throughput", baseline=True, needs="wrk"),
    Contender("api.route_throughput", "api.throughput", "HTTP API route, wrk -c64",
              "bench_api:route_throughput", needs="wrk"),
    # ``python -m bench reload``: a save to the first new answer, against a fresh import.
    Contender("reload.fresh_import", "reload", "a fresh python importing the handler",
              "bench_reload:fresh_import", baseline=True),
    Contender("reload.save", "reload", "serve --template: save -> new answer",
              "bench_reload:save_to_answer"),
    # ``python -m bench streaming``: a Node.js streaming handler, streamed and whole.
    Contender("streaming.whole", "streaming.first", "invoke(): the whole answer",
              "bench_streaming:first_byte_whole", baseline=True, needs="node"),
    Contender("streaming.streamed", "streaming.first", "invoke_stream(): 10 parts 50 ms apart",
              "bench_streaming:first_byte_streamed", needs="node"),
    Contender("streaming.whole_6mb", "streaming.throughput", "invoke(): 6 MB whole",
              "bench_streaming:throughput_whole", baseline=True, needs="node"),
    Contender("streaming.streamed_20mb", "streaming.throughput", "invoke_stream(): 20 MB",
              "bench_streaming:throughput_streamed", needs="node"),
]
BY_NAME = {contender.name: contender for contender in CONTENDERS}


def run(name: str, quick: bool) -> dict:
    contender = BY_NAME[name]
    module, function = contender.target.split(":")
    measure = getattr(importlib.import_module(f"bench.{module}"), function)
    try:
        outcome = measure(QUICK if quick else FULL)
    except Skipped as skip:
        return {"name": name, "group": contender.group, "skipped": str(skip)}
    return {"name": name, "group": contender.group, **outcome}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._runner")
    parser.add_argument("contender", choices=sorted(BY_NAME))
    parser.add_argument("--quick", action="store_true", help="small sizes, for iterating")
    args = parser.parse_args(argv)
    line = msgspec.json.encode(run(args.contender, args.quick))
    sys.stdout.buffer.write(line + b"\n")


if __name__ == "__main__":
    main()
