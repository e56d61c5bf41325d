"""The peer comparison: the same add handler, the same event, through each way of
running a function in another process (or, for lambda-local, in-process).

Groups (each contender in its own fresh interpreter, like every benchmark here; the
baseline of each group is fastinvoke, so *vs. baseline* reads "times fastinvoke"):

- ``peers.latency``: one warm synchronous call after another, p50 and p99.
- ``peers.throughput``: invocations per second with 64 in flight; the batched rows
  (a pool's ``map`` in chunks, fastinvoke's ``invoke_many``) hand over a whole batch at
  once, as many events in each.
- ``peers.coldstart``: from nothing running to the first answer.

A peer that cannot run here (no node/npm, python-lambda-local not installed, a
fastinvoke front-end not in this build) is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import multiprocessing
import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from . import nodepeer, rawzmq
from ._skip import Skipped
from .bench_coldstart import summary
from .bench_latency import FUNCTIONS_DIR, _time_calls
from .bench_throughput import _invoker, _outcome, check_workers, warm_workers
from .data import ADD_EVENT, ADD_EVENT_BYTES, ADD_RESULT, IN_FLIGHT, WORKERS, Sizes, add_answers
from .data import add_events as make_events
from .functions.add import lambda_handler
from .stats import latency_us

ADD_PY = str(Path(FUNCTIONS_DIR) / "add.py")
MAP_CHUNK = 256  # events per task in the batched map rows


def _slow(sizes: Sizes, calls: int) -> Sizes:
    """Fewer calls for a contender that takes milliseconds per call."""
    return dataclasses.replace(sizes, latency_calls=calls, warmup_calls=max(1, calls // 10))


# -- latency ------------------------------------------------------------------------------

def _serve_unix(sock: socket.socket) -> None:
    """Decode the event, add, reply with the encoded sum: the raw-socket floor."""
    decode, encode = msgspec.json.decode, msgspec.json.encode
    while message := sock.recv(65536):
        event = decode(message)
        sock.send(encode(event["value1"] + event["value2"]))


def unix_socket(sizes: Sizes) -> dict[str, Any]:
    """A Unix SOCK_SEQPACKET pair to a forked process: no ZeroMQ, no framing, no I/O
    thread; the least any request/reply between two processes can cost."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs, rawzmq.forked(_serve_unix, theirs):
        theirs.close()
        encode, send, recv = msgspec.json.encode, ours.send, ours.recv

        def call() -> bytes:
            send(encode(ADD_EVENT))
            return recv(65536)

        return _time_calls(call, ADD_RESULT, sizes)


def mp_pool(sizes: Sizes) -> dict[str, Any]:
    with multiprocessing.Pool(1) as pool:
        apply = pool.apply
        return _time_calls(lambda: apply(lambda_handler, (ADD_EVENT, None)), 3, sizes)


def _python_lambda_local() -> tuple[Any, Any]:
    try:
        from lambda_local.context import Context
        from lambda_local.main import call
    except ImportError as exc:
        raise Skipped(f"python-lambda-local is not importable ({exc}): "
                      "pip install -e '.[bench]'") from None
    return call, Context


def pll_api(sizes: Sizes) -> dict[str, Any]:
    """``lambda_local.main.call``: a new process per call (its isolation), logging as it
    does by default."""
    call, context_type = _python_lambda_local()
    context = context_type(3)

    def invoke() -> Any:
        result, error = call(lambda_handler, ADD_EVENT, context)
        return result if error is None else error

    return _time_calls(invoke, 3, _slow(sizes, sizes.peer_calls), tree_cpu=False)


def _time_cli(argv: list[str], answer_in: Any, calls: int) -> list[int]:
    """ns from spawn to exit of ``calls`` runs of a command line; one untimed first."""
    samples = []
    for n in range(calls + 1):
        started = time.perf_counter_ns()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        elapsed = time.perf_counter_ns() - started
        if done.returncode != 0 or not answer_in(done.stdout):
            raise AssertionError(f"{argv[0]} answered {done.stdout[-300:]!r} {done.stderr[-300:]}")
        if n:
            samples.append(elapsed)
    return samples


@contextlib.contextmanager
def _event_file() -> Any:
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as file:
        file.write(ADD_EVENT_BYTES)
        file.flush()
        yield file.name


def pll_cli(sizes: Sizes) -> dict[str, Any]:
    """``python-lambda-local -f lambda_handler add.py event.json``: the console script
    itself (not a version manager's shim in front of it)."""
    _python_lambda_local()
    script = os.path.join(sysconfig.get_path("scripts"), "python-lambda-local")
    with _event_file() as event:
        samples = _time_cli([script, "-f", "lambda_handler", ADD_PY, event],
                            lambda out: out.rstrip().endswith("RESULT:\n3"), sizes.cli_calls)
    return {"metrics": latency_us(samples), "samples": len(samples)}


def _node(*args: str) -> dict[str, Any]:
    try:
        return msgspec.json.decode(nodepeer.api(*args))
    except nodepeer.Unavailable as exc:
        raise Skipped(str(exc)) from None


def ll_api(sizes: Sizes) -> dict[str, Any]:
    """lambda-local's ``execute`` with the handler module required once (``lambdaFunc``):
    in-process, nothing between caller and handler but a Promise and a timer."""
    samples = _node("latency", str(sizes.latency_calls), str(sizes.warmup_calls), "func")
    return {"metrics": latency_us(samples["samples_ns"]), "samples": sizes.latency_calls}


def ll_api_path(sizes: Sizes) -> dict[str, Any]:
    """lambda-local's ``execute`` given the handler's path, as its README shows: it
    re-requires the module on every call."""
    samples = _node("latency", str(sizes.latency_calls), str(sizes.warmup_calls), "path")
    return {"metrics": latency_us(samples["samples_ns"]), "samples": sizes.latency_calls}


def ll_cli(sizes: Sizes) -> dict[str, Any]:
    try:
        argv_of = nodepeer.cli_argv
        with _event_file() as event:
            argv = argv_of(event)
            samples = _time_cli(argv, lambda out: out.rstrip().splitlines()[0].endswith(" 3"),
                                sizes.cli_calls)
    except nodepeer.Unavailable as exc:
        raise Skipped(str(exc)) from None
    return {"metrics": latency_us(samples), "samples": len(samples)}


# -- throughput: 64 in flight -------------------------------------------------------------

def _answers(count: int) -> tuple[list[dict[str, int]], list[bytes]]:
    events = make_events(count)
    return events, add_answers(events)


def _as_bytes(results: list[Any]) -> list[bytes | None]:
    return [None if r is None else b"%d" % r for r in results]


def ppe_submit(sizes: Sizes) -> dict[str, Any]:
    """ProcessPoolExecutor(2): 64 asyncio tasks on uvloop, each awaiting one ``submit``
    at a time (fastinvoke's async row, with a pool instead)."""
    import uvloop

    events, answers = _answers(sizes.throughput_calls)
    results: list[Any] = [None] * len(events)

    async def run(source: list, out: list) -> int:
        async def caller(indices: range) -> None:
            for i in indices:
                out[i] = await asyncio.wrap_future(submit(lambda_handler, source[i], None))

        gc.collect()
        started = time.perf_counter_ns()
        await asyncio.gather(*(caller(range(k, len(source), IN_FLIGHT))
                               for k in range(IN_FLIGHT)))
        return time.perf_counter_ns() - started

    with ProcessPoolExecutor(WORKERS) as pool:
        submit = pool.submit
        warm = [ADD_EVENT] * (IN_FLIGHT * 4)
        uvloop.run(run(warm, [None] * len(warm)))
        elapsed = uvloop.run(run(events, results))
    return _outcome(_as_bytes(results), answers, elapsed)


def ppe_map(sizes: Sizes) -> dict[str, Any]:
    """ProcessPoolExecutor(2).map with chunks of 256: batching, where a pool shines (as many
    events as ``invoke_many``'s row)."""
    events, answers = _answers(sizes.batch_calls)
    with ProcessPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda_handler, [ADD_EVENT] * MAP_CHUNK * 2, [None] * MAP_CHUNK * 2))
        gc.collect()
        started = time.perf_counter_ns()
        results = list(pool.map(lambda_handler, events, [None] * len(events),
                                chunksize=MAP_CHUNK))
        elapsed = time.perf_counter_ns() - started
    return _outcome(_as_bytes(results), answers, elapsed)


def mp_pool_async(sizes: Sizes) -> dict[str, Any]:
    """multiprocessing.Pool(2).apply_async, at most 64 outstanding (a semaphore)."""
    events, answers = _answers(sizes.throughput_calls)
    results: list[Any] = [None] * len(events)

    def run(pool: Any, source: list, out: list) -> int:
        slots = threading.BoundedSemaphore(IN_FLIGHT)
        done = threading.Event()
        remaining = [len(source)]

        def finished(i: int) -> Any:
            def store(value: Any) -> None:
                out[i] = value
                slots.release()
                remaining[0] -= 1  # result-handler thread only: no race
                if not remaining[0]:
                    done.set()
            return store

        gc.collect()
        started = time.perf_counter_ns()
        for i, event in enumerate(source):
            slots.acquire()
            pool.apply_async(lambda_handler, (event, None), callback=finished(i))
        if not done.wait(60):
            raise AssertionError("multiprocessing.Pool did not answer within 60 s")
        return time.perf_counter_ns() - started

    with multiprocessing.Pool(WORKERS) as pool:
        warm = [ADD_EVENT] * (IN_FLIGHT * 4)
        run(pool, warm, [None] * len(warm))
        elapsed = run(pool, events, results)
    return _outcome(_as_bytes(results), answers, elapsed)


def mp_pool_map(sizes: Sizes) -> dict[str, Any]:
    """multiprocessing.Pool(2).map with chunks of 256 (as many events as ``invoke_many``'s
    row)."""
    events, answers = _answers(sizes.batch_calls)
    with multiprocessing.Pool(WORKERS) as pool:
        pool.map(_add_one, [ADD_EVENT] * MAP_CHUNK * 2)
        gc.collect()
        started = time.perf_counter_ns()
        results = pool.map(_add_one, events, chunksize=MAP_CHUNK)
        elapsed = time.perf_counter_ns() - started
    return _outcome(_as_bytes(results), answers, elapsed)


def _add_one(event: dict[str, int]) -> int:
    return lambda_handler(event, None)


def fastinvoke_many(sizes: Sizes) -> dict[str, Any]:
    """``Invoker.invoke_many``: the batch streamed through 2 warm workers, ``concurrency``
    2, one call for all the events (as many as the pools' ``map`` rows).  After the clock
    stops: every answer, the meter's ``invocations`` grown by exactly the batch, and each
    invocation's START, END and REPORT lines in the log store."""
    events, answers = _answers(sizes.batch_calls)
    with _invoker() as inv:
        warm = [ADD_EVENT] * (IN_FLIGHT * 4)
        warm_workers(inv, lambda: inv.invoke_many("add", warm, concurrency=WORKERS))
        metered = inv.meter("add")["invocations"]
        gc.collect()
        started = time.perf_counter_ns()
        results = inv.invoke_many("add", events, concurrency=WORKERS)
        elapsed = time.perf_counter_ns() - started
        check_workers(inv)
        grew = inv.meter("add")["invocations"] - metered
        if grew != len(events):
            raise AssertionError(f"the meter counted {grew} invocations, not {len(events)}")
        logged = _check_log_records(inv.log_events("add"), [r.request_id for r in results])
    outcome = _outcome([r.payload for r in results], answers, elapsed)
    outcome["checked"] = (f"{len(results):,} answers; meter invocations +{grew:,}; "
                          f"{logged:,} request ids with exactly START, END, REPORT stored")
    return outcome


def _check_log_records(stored: list[Any], request_ids: list[str]) -> int:
    """Each request id's stored lines are START, END and REPORT, in that order (the add
    handler prints nothing); returns how many request ids were checked: all of them."""
    if len(set(request_ids)) != len(request_ids):
        raise AssertionError("invoke_many returned a request id twice")
    lines: dict[str, list[str]] = {rid: [] for rid in request_ids}
    for event in stored:
        if event.request_id in lines:
            lines[event.request_id].append(event.message.split(" ", 1)[0])
    bad = [rid for rid, kinds in lines.items() if kinds != ["START", "END", "REPORT"]]
    if bad:
        raise AssertionError(f"{len(bad)} of {len(lines)} invocations lack their log record, "
                             f"e.g. {bad[0]}: {lines[bad[0]]}")
    return len(lines)


def ll_api_throughput(sizes: Sizes) -> dict[str, Any]:
    """lambda-local's ``execute``, 64 Promises in flight in one Node.js process."""
    out = _node("throughput", str(sizes.throughput_calls), str(IN_FLIGHT))
    return {"metrics": {"inv_per_s": out["calls"] / (out["elapsed_ns"] / 1e9)},
            "samples": out["calls"]}


# -- cold start ---------------------------------------------------------------------------

def _cold(start_and_answer: Any, count: int) -> dict[str, Any]:
    samples = []
    for _ in range(count + 1):  # the first warms the page cache, untimed
        samples.append(start_and_answer())
    return summary(samples[1:])


def ppe_cold(sizes: Sizes) -> dict[str, Any]:
    """A new ProcessPoolExecutor(1) and its first answer (its worker forks on demand)."""
    def once() -> int:
        started = time.perf_counter_ns()
        pool = ProcessPoolExecutor(1)
        answer = pool.submit(lambda_handler, ADD_EVENT, None).result()
        elapsed = time.perf_counter_ns() - started
        pool.shutdown()
        if answer != 3:
            raise AssertionError(f"wrong answer {answer!r}")
        return elapsed

    return _cold(once, sizes.coldstarts)


def mp_pool_cold(sizes: Sizes) -> dict[str, Any]:
    def once() -> int:
        started = time.perf_counter_ns()
        with multiprocessing.Pool(1) as pool:
            answer = pool.apply(lambda_handler, (ADD_EVENT, None))
            elapsed = time.perf_counter_ns() - started
        if answer != 3:
            raise AssertionError(f"wrong answer {answer!r}")
        return elapsed

    return _cold(once, sizes.coldstarts)


def ll_api_cold(sizes: Sizes) -> dict[str, Any]:
    """A fresh Node.js process requiring lambda-local and the handler, to its answer."""
    try:
        env = nodepeer.environment()
    except nodepeer.Unavailable as exc:
        raise Skipped(str(exc)) from None

    def once() -> int:
        started = time.perf_counter_ns()
        done = subprocess.run(["node", nodepeer.SCRIPT, "coldstart"], capture_output=True,
                              env=env, timeout=30)
        elapsed = time.perf_counter_ns() - started
        if done.returncode != 0 or b"answered" not in done.stdout:
            raise AssertionError(f"lambda_local.js coldstart failed: {done.stderr[-300:]!r}")
        return elapsed

    return _cold(once, sizes.coldstarts)


# -- fastinvoke's front-ends, driven by its own load generator -----------------------------

@contextlib.contextmanager
def _served(kind: str, *options: str) -> Iterator[str]:
    """``fastinvoke serve`` with the ``add`` function (and ``options``); yields its HTTP
    URL or its ZeroMQ endpoint (ipc://, the transport of the raw pyzmq floor); skipped
    where this build has no such server."""
    help_text = subprocess.run([sys.executable, "-m", "fastinvoke", "serve", "--help"],
                               capture_output=True, text=True).stdout
    if "--port" not in help_text or (kind == "zmq" and "--zmq" not in help_text):
        raise Skipped(f"`fastinvoke serve` with a {kind} front-end is not in this build")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        template = Path(tmp) / "template.yaml"
        template.write_text(SERVE_TEMPLATE.format(code=FUNCTIONS_DIR))
        port, zmq = _free_port(), f"ipc://{tmp}/zmq"
        # The server's output goes to a file: a pipe nobody reads would stall it once full.
        with open(f"{tmp}/serve.log", "w+b") as log, subprocess.Popen(
                [sys.executable, "-m", "fastinvoke", "serve", "--template", str(template),
                 "--port", str(port), "--zmq", zmq, "--state-dir", f"{tmp}/state",
                 *options],
                stdout=log, stderr=log) as server:
            try:
                _wait_healthy(port, server, log)
                yield f"http://127.0.0.1:{port}" if kind == "http" else zmq
            finally:
                server.terminate()
                server.wait(30)


def _front_end(kind: str, sizes: Sizes, concurrency: int) -> Any:
    """The recorder of a closed-loop run of ``fastinvoke bench``'s engine against
    ``fastinvoke serve`` (HTTP or ZeroMQ)."""
    import uvloop

    from fastinvoke.loadgen import Plan, make_target, run

    with _served(kind) as endpoint:
        calls = sizes.latency_calls if concurrency == 1 else sizes.throughput_calls
        target = make_target("add", ADD_EVENT_BYTES, endpoint=endpoint)
        plan = Plan(concurrency, requests=calls, warmup=max(sizes.warmup_calls, 256))
        return uvloop.run(run(target, plan))


SERVE_TEMPLATE = """\
Resources:
  add:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: add
      CodeUri: {code}
      Handler: add.lambda_handler
      MemorySize: 1769
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(port: int, server: subprocess.Popen, log: Any,
                  timeout_s: float = 15.0) -> None:
    """Readiness by probe: GET /healthz answers 200, bounded in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise AssertionError(f"fastinvoke serve exited: {log.read()[-500:]!r}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)
    raise AssertionError(f"fastinvoke serve was not healthy within {timeout_s} s")


def _front_end_latency(kind: str, sizes: Sizes) -> dict[str, Any]:
    recorder = _front_end(kind, sizes, 1)
    check_no_errors(recorder)
    stats = recorder.summary().latency_us
    return {"metrics": {"p50_us": stats["p50"], "p99_us": stats["p99"]},
            "samples": len(recorder)}


def _front_end_throughput(kind: str, sizes: Sizes) -> dict[str, Any]:
    recorder = _front_end(kind, sizes, IN_FLIGHT)
    check_no_errors(recorder)
    return {"metrics": {"inv_per_s": recorder.summary().throughput}, "samples": len(recorder)}


def check_no_errors(recorder: Any) -> None:
    if recorder.error_count:
        raise AssertionError(f"{recorder.error_count} errors: {recorder.summary()}")


def http_latency(sizes: Sizes) -> dict[str, Any]:
    return _front_end_latency("http", sizes)


def zmq_latency(sizes: Sizes, *options: str) -> dict[str, Any]:
    """A harness's synchronous loop: ``ZmqClient.invoke``, one call at a time, against
    ``fastinvoke serve`` (given ``options``)."""
    from fastinvoke.client import ZmqClient

    with _served("zmq", *options) as endpoint, ZmqClient(endpoint, timeout_s=30) as client:
        invoke = client.invoke
        return _time_calls(lambda: invoke("add", ADD_EVENT_BYTES).payload, ADD_RESULT, sizes)


def http_throughput(sizes: Sizes) -> dict[str, Any]:
    return _front_end_throughput("http", sizes)


def zmq_throughput(sizes: Sizes) -> dict[str, Any]:
    return _front_end_throughput("zmq", sizes)
