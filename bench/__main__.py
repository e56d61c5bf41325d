"""python -m bench [core|latency|throughput|coldstart|isolation|events|runtimes|peers|
http|api|streaming|reload|idle|sandbox|cluster] [--json] [--versions] [--rounds N] [--quick];
python -m bench chaos --seconds N

Runs every contender of the chosen groups in its own fresh subprocess
(``python -m bench._runner NAME``), alternating the order round by round so slow
moments of this noisy machine fall on every contender alike, then prints the medians
with ratios against each group's baseline (``bench._report``).  The group defaults to
``core`` (latency, throughput, coldstart; ``isolation``, ``peers`` and the others run
only when named); ``--versions`` puts the machine facts above the figures.  A contender that
cannot run here (a peer not installed) is skipped, and the reason is printed.

Cleanup is enforced, not hoped for: each runner gets its own process group and a time
limit, and this process is a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so anything
a runner leaves behind is reparented here, reported on stderr and killed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import math
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import msgspec

from . import _report
from ._runner import CONTENDERS, Contender

GROUPS = {
    "latency": ["latency"],
    "throughput": ["throughput"],
    "coldstart": ["coldstart"],
    "core": ["latency", "throughput", "coldstart"],
    # What isolating workers costs (log capture, cgroups); not part of core's figures.
    "isolation": ["isolation.logs", "isolation.cgroups"],
    # Event invocations: durable acceptance, and the drain rate of a backlog.
    "events": ["events.accept", "events.accept_sync", "events.drain"],
    # fastinvoke against the other ways to run a function; each group's baseline is
    # fastinvoke itself.
    "peers": ["peers.latency", "peers.throughput", "peers.coldstart"],
    # The HTTP front-end (`fastinvoke serve`); throughput needs wrk (apt-get install -y wrk).
    "http": ["http.throughput", "http.latency"],
    # API Gateway routes of a template against the Invoke API of the same server.
    "api": ["api.latency", "api.throughput"],
    # Hot reload: a save to the first answer of the new code, against a fresh import.
    "reload": ["reload"],
    # Response streaming: a Node.js handler's parts as written, against its whole answer.
    "streaming": ["streaming.first", "streaming.throughput"],
    # Node.js through the Runtime API; not part of core's figures.
    "runtimes": ["runtimes.latency", "runtimes.coldstart"],
    # The CPU that 20 warm idle workers (and their front-end) use over 10 s: an absolute
    # figure, the group's only row.
    "idle": ["idle"],
    # What each function's own environment costs (needs root).
    "sandbox": ["sandbox.warm", "sandbox.first"],
    # Scale-out on Ray: remote workers on a local 2-node cluster against local ones.
    "cluster": ["cluster.latency", "cluster.throughput", "cluster.created", "cluster.new_worker"],
}
# Many contenders, some taking seconds a round: fewer rounds keep it near 3 minutes.
# idle: a 10 s window per round.
DEFAULT_ROUNDS = {"peers": 3, "idle": 3, "cluster": 3}
ROOT = str(Path(__file__).resolve().parent.parent)
RUN_TIMEOUT_S = 90
_PR_SET_CHILD_SUBREAPER = 36


def run_contender(contender: Contender, quick: bool) -> dict:
    """One fresh interpreter for one measurement; its JSON line, parsed."""
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    }
    argv = [sys.executable, "-m", "bench._runner", contender.name] + (["--quick"] * quick)
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except BaseException as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise SystemExit(f"bench: {contender.name} ran over {RUN_TIMEOUT_S} s") from None
        raise
    finally:
        reap_leftovers(contender.name)
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace"))
        raise SystemExit(f"bench: {contender.name} failed (exit {proc.returncode})")
    return msgspec.json.decode(out.splitlines()[-1])


def reap_leftovers(name: str, grace_s: float = 3.0) -> None:
    """Reap what a runner left (reparented here); kill whatever outlives ``grace_s``."""
    while children := _children():
        for pid in children:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                if not select.select([fd], [], [], grace_s)[0]:  # exit, or the grace ends
                    sys.stderr.write(f"bench: {name} left pid {pid} running: {_cmdline(pid)}\n")
                    os.kill(pid, signal.SIGKILL)
            finally:
                os.close(fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _children() -> list[int]:
    pids = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as listing:
            pids += [int(pid) for pid in listing.read().split()]
    return pids


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def skipped(outcomes: dict[str, list[dict]]) -> dict[str, str]:
    """Contenders that could not run here (in any round), with the reason."""
    return {name: next(run["skipped"] for run in runs if "skipped" in run)
            for name, runs in outcomes.items() if any("skipped" in run for run in runs)}


def summarize(contenders: list[Contender], outcomes: dict[str, list[dict]]) -> list:
    """One row per contender and metric; ratios paired round by round."""
    rows = []
    contenders = [c for c in contenders if c.name not in skipped(outcomes)]
    for group in dict.fromkeys(c.group for c in contenders):
        members = sorted((c for c in contenders if c.group == group), key=lambda c: not c.baseline)
        base = outcomes[members[0].name]
        for contender in members:
            runs = outcomes[contender.name]
            for metric in runs[0]["metrics"]:
                values = [run["metrics"][metric] for run in runs]
                bases = [b["metrics"][metric] for b in base]
                ratios = [_ratio(v, b) for v, b in zip(values, bases, strict=True)]
                samples = sum(run["samples"] for run in runs)
                rows.append(
                    _report.Row(
                        group,
                        contender.name,
                        contender.label,
                        metric,
                        statistics.median(values),
                        math.nan if any(map(math.isnan, ratios)) else statistics.median(ratios),
                        values,
                        samples,
                        contender.baseline,
                    )
                )
    return rows


def _ratio(value: float, base: float) -> float:
    """value / base; against a zero base (an idle figure can be exactly 0): 1 for a zero
    value (the baseline's own row), else NaN, which the report prints as n/a."""
    if base:
        return value / base
    return 1.0 if value == 0 else math.nan


class Spec(NamedTuple):
    title: str
    top: str  # contender names
    bottom: str
    metric: str
    op: str | None  # None: shown for context, no target
    target: float | None
    unit: str = "x"  # "x": a ratio top / bottom; else a difference top - bottom, in unit


SPECS = [
    Spec("HTTP sync invoke throughput, 64 connections: fastinvoke / bare uvloop",
         "http.fastinvoke", "http.bare", "req_per_s", ">=", 0.3),
    Spec("invoke p50: boto3 over HTTP / embedded", "http.boto3", "http.embedded", "p50_us",
         None, None),
    Spec("latency p50: fastinvoke / raw", "latency.fastinvoke", "latency.raw", "p50_us", "<=", 1.3),
    Spec("latency p99: fastinvoke / raw", "latency.fastinvoke", "latency.raw", "p99_us", "<=", 1.3),
    Spec("latency p50: PPE / fastinvoke", "latency.ppe", "latency.fastinvoke", "p50_us", ">=", 2),
    Spec("latency p50, no CPU quota: fastinvoke / raw", "latency.fastinvoke_no_cpu_limit",
         "latency.raw", "p50_us", None, None),
    Spec("latency p50, no CPU quota: PPE / fastinvoke", "latency.ppe",
         "latency.fastinvoke_no_cpu_limit", "p50_us", None, None),
    Spec(
        "throughput: fastinvoke async / raw",
        "throughput.fastinvoke_async",
        "throughput.raw",
        "inv_per_s",
        ">=",
        0.8,
    ),
    Spec(
        "throughput: fastinvoke threads / raw",
        "throughput.fastinvoke_threads",
        "throughput.raw",
        "inv_per_s",
        ">=",
        0.8,
    ),
    Spec(
        "cold start p50: fresh python / fastinvoke",
        "coldstart.fresh",
        "coldstart.fastinvoke",
        "p50_ms",
        ">=",
        20,
    ),
    Spec(
        "log capture: printing / silent",
        "isolation.printing",
        "isolation.silent",
        "inv_per_s",
        ">=",
        0.8,
    ),
    Spec(
        "log capture, to lines committed: printing / silent",
        "isolation.printing",
        "isolation.silent",
        "inv_per_s_stored",
        ">=",
        0.8,
    ),
    Spec("hot reload p50: save -> new answer / a fresh python importing it", "reload.save",
         "reload.fresh_import", "p50_ms", "<=", 10),
    Spec("streaming, first byte: streamed / whole answer (10 parts 50 ms apart)",
         "streaming.streamed", "streaming.whole", "first_ms", "<=", 0.2),
    Spec("streaming, last byte: streamed / whole answer", "streaming.streamed",
         "streaming.whole", "last_ms", "<=", 1.1),
    Spec("streaming, MB/s: 20 MB streamed / 6 MB whole", "streaming.streamed_20mb",
         "streaming.whole_6mb", "mb_per_s", None, None),
    Spec("Node.js warm p50: Runtime API / Python ZeroMQ path", "runtimes.node",
         "runtimes.python", "p50_us", None, None),
    Spec("Node.js warm p99: Runtime API / Python ZeroMQ path", "runtimes.node",
         "runtimes.python", "p99_us", None, None),
    Spec("Node.js new worker's first reply / fresh node -e ''", "runtimes.node_worker",
         "runtimes.node_fresh", "p50_ms", None, None),
    # A cost of a fraction of a millisecond on a base that moves by milliseconds between
    # runs: the target is on the difference; the ratio is context.
    Spec(
        "cgroup setup, cold start p50: cgroups / none",
        "isolation.cgroups",
        "isolation.no_cgroups",
        "p50_ms",
        None,
        None,
    ),
    Spec(
        "cgroup setup, cold start p50: cgroups - none",
        "isolation.cgroups",
        "isolation.no_cgroups",
        "p50_ms",
        "<",
        1,
        unit="ms",
    ),
    Spec("sandbox, warm p50: sandboxed / not", "sandbox.warm_on", "sandbox.warm_off",
         "p50_us", "<=", 1.05),
    Spec("sandbox, new worker's first reply p50: sandboxed - not", "sandbox.first_on",
         "sandbox.first_off", "p50_ms", "<=", 1, unit="ms"),
    Spec("Event acceptance, 64 async callers: durable / in memory", "events.accept.durable",
         "events.accept.memory", "accepted_per_s", ">=", 0.5),
    Spec("Event acceptance, 1 thread: durable / in memory", "events.accept_sync.durable",
         "events.accept_sync.memory", "accepted_per_s", None, None),
    Spec("Event drain, 2 workers: queued events / sync 64 in flight", "events.drain.events",
         "events.drain.sync", "inv_per_s", None, None),
    # The peer comparison.  The local hop's targets first, then the earlier ones, then the
    # rest for context (no target).
    *[Spec(title, f"peers.{top}", f"peers.{bottom}", metric, op, target) for
      title, top, bottom, metric, op, target in [
          ("peers, p50: fastinvoke / lambda-local API in-process", "latency.fastinvoke",
           "latency.ll_api", "p50_us", "<=", 0.25),
          ("peers, p50: fastinvoke / raw pyzmq", "latency.fastinvoke", "latency.rawzmq",
           "p50_us", "<=", 0.3),
          ("peers, CPU per call, all processes: fastinvoke / raw pyzmq", "latency.fastinvoke",
           "latency.rawzmq", "cpu_us_per_call", "<=", 1),
          ("peers, 64 in flight: fastinvoke / multiprocessing.Pool apply_async",
           "throughput.fastinvoke", "throughput.mp_pool", "inv_per_s", ">=", 3),
          ("peers, 64 in flight: fastinvoke / lambda-local API", "throughput.fastinvoke",
           "throughput.ll_api", "inv_per_s", ">=", 5),
          ("peers, batched, same events: fastinvoke invoke_many / ProcessPoolExecutor map",
           "throughput.fastinvoke_many", "throughput.ppe_map", "inv_per_s", ">=", 0.5),
          ("peers, cold start: fastinvoke / new ProcessPoolExecutor", "coldstart.fastinvoke",
           "coldstart.ppe", "p50_ms", "<=", 0.5),
          ("peers, p50: fastinvoke ZeroMQ endpoint / raw pyzmq", "latency.fastinvoke_zmq",
           "latency.rawzmq", "p50_us", "<=", 1.3),
          ("peers, p50: ProcessPoolExecutor / fastinvoke", "latency.ppe", "latency.fastinvoke",
           "p50_us", ">=", 2),
          ("peers, p50: python-lambda-local API / fastinvoke", "latency.pll_api",
           "latency.fastinvoke", "p50_us", ">=", 25),
          ("peers, p50: python-lambda-local CLI / fastinvoke", "latency.pll_cli",
           "latency.fastinvoke", "p50_us", ">=", 1000),
          ("peers, p50: multiprocessing.Pool / fastinvoke", "latency.mp_pool",
           "latency.fastinvoke", "p50_us", None, None),
          ("peers, p50: lambda-local CLI / fastinvoke", "latency.ll_cli", "latency.fastinvoke",
           "p50_us", None, None),
          ("peers, p50: fastinvoke / raw Unix socket", "latency.fastinvoke", "latency.unix",
           "p50_us", None, None),
          ("peers, p50: fastinvoke HTTP / embedded", "latency.fastinvoke_http",
           "latency.fastinvoke", "p50_us", None, None),
          ("peers, p50: fastinvoke ZeroMQ / embedded", "latency.fastinvoke_zmq",
           "latency.fastinvoke", "p50_us", None, None),
          ("peers, 64 in flight: fastinvoke / ProcessPoolExecutor submit",
           "throughput.fastinvoke", "throughput.ppe", "inv_per_s", None, None),
          ("peers, batched: fastinvoke invoke_many / ainvoke 64 in flight",
           "throughput.fastinvoke_many", "throughput.fastinvoke", "inv_per_s", None, None),
          ("peers, batched, same events: fastinvoke invoke_many / multiprocessing.Pool map",
           "throughput.fastinvoke_many", "throughput.mp_pool_map", "inv_per_s", None, None),
          ("peers, cold start: fastinvoke / new multiprocessing.Pool", "coldstart.fastinvoke",
           "coldstart.mp_pool", "p50_ms", None, None),
          ("peers, cold start: fresh node + lambda-local / fastinvoke", "coldstart.ll_api",
           "coldstart.fastinvoke", "p50_ms", None, None),
      ]],
]


def checks(rows: list[_report.Row]) -> list[_report.Check]:
    """The issues' targets whose contenders ran, each a median over rounds of a paired
    ratio or difference."""
    values = {(row.name, row.metric): row.per_round for row in rows}
    return [
        _report.Check(
            spec.title,
            _paired(values[spec.top, spec.metric], values[spec.bottom, spec.metric], spec.unit),
            spec.op,
            spec.target,
            spec.unit,
        )
        for spec in SPECS
        if (spec.top, spec.metric) in values and (spec.bottom, spec.metric) in values
    ]


def _paired(top: list[float], bottom: list[float], unit: str = "x") -> float:
    """Median over rounds of top / bottom (``unit`` "x"), else of top - bottom."""
    pairs = zip(top, bottom, strict=True)
    return statistics.median(t / b if unit == "x" else t - b for t, b in pairs)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["chaos"]:  # a soak with targets of its own, not a ratio benchmark
        from . import chaos

        raise SystemExit(chaos.main(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("group", nargs="?", default="core", choices=sorted(GROUPS))
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--versions", action="store_true", help="print the machine facts")
    parser.add_argument("--rounds", type=int,
                        help="rounds per contender (default 7, peers and idle 3; quick 3)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for iterating")
    args = parser.parse_args(argv)
    machine = _report.facts() if args.versions else None
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)
    contenders = [c for c in CONTENDERS if c.group in GROUPS[args.group]]
    for group in {c.group for c in contenders if c.needs and shutil.which(c.needs) is None}:
        needs = {c.needs for c in contenders if c.group == group} - {None}
        print(f"bench: skipping {group}: it needs {', '.join(sorted(needs))}, not installed "
              "(on Debian: apt-get install -y " + " ".join(sorted(needs)) + ")", file=sys.stderr)
        contenders = [c for c in contenders if c.group != group]
    rounds = args.rounds or (3 if args.quick else DEFAULT_ROUNDS.get(args.group, 7))
    outcomes: dict[str, list[dict]] = {c.name: [] for c in contenders}
    started = time.monotonic()
    for round_ in range(rounds):
        for contender in contenders if round_ % 2 == 0 else contenders[::-1]:
            outcomes[contender.name].append(run_contender(contender, args.quick))
            print(f"bench: round {round_ + 1}/{rounds} {contender.name} done", file=sys.stderr)
    rows = summarize(contenders, outcomes)
    verified = {name: runs[-1]["checked"] for name, runs in outcomes.items()
                if runs and "checked" in runs[-1]}
    title = (
        f"python -m bench {args.group}{' --quick' * args.quick}: {rounds} rounds, "
        f"{time.monotonic() - started:.0f} s; values: medians over rounds; "
        "vs. baseline: medians of per-round ratios"
    )
    print(_report.render(rows, checks(rows), as_json=args.json, machine=machine, title=title,
                         skipped=skipped(outcomes), verified=verified))


if __name__ == "__main__":
    main()
