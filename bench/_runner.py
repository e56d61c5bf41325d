"""Child side: run one contender in this fresh process and print one JSON line.

    python -m bench._runner CONTENDER [--quick]

The line is ``{"name", "group", "metrics": {...}, "samples"}``.  Nothing else goes to
stdout, so the driver can parse it; diagnostics go to stderr.  The registry below is
also what the driver iterates over; it imports no contender code until one runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

import msgspec

from .data import FULL, QUICK


@dataclass(frozen=True)
class Contender:
    name: str
    group: str
    label: str
    target: str  # "module:function" under bench, imported only in the child
    baseline: bool = False


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
        "Python add, ZeroMQ path",
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
]
BY_NAME = {contender.name: contender for contender in CONTENDERS}


def run(name: str, quick: bool) -> dict:
    contender = BY_NAME[name]
    module, function = contender.target.split(":")
    measure = getattr(importlib.import_module(f"bench.{module}"), function)
    outcome = measure(QUICK if quick else FULL)
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
