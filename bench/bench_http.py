"""The HTTP front-end (``fastinvoke serve``): throughput and a boto3 round trip.

Throughput: wrk (Debian's package: ``apt-get install -y wrk``) with 64 keep-alive
connections on one thread POSTs the add event for a fixed time, against a bare uvloop
server answering a fixed 200 (``bare_http.py``, the baseline) and against
``fastinvoke serve`` invoking the add function synchronously.  Every fastinvoke answer
must be a 200: wrk's count of others fails the run.  An untimed run first lets the pool
grow its workers.

Latency: a boto3 client's ``invoke`` of the warm add function, p50/p99, beside the
embedded ``Invoker.invoke`` (``bench_latency``) as its baseline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .data import ADD_EVENT_BYTES, ADD_RESULT, MEMORY_MB, QUICK, Sizes
from .stats import latency_us

CONNECTIONS = 64
ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = Path(__file__).resolve().parent / "functions"
INVOKE_PATH = "/2015-03-31/functions/add/invocations"
WRK_MISSING = "wrk is not installed: `apt-get install -y wrk` (Debian's package) runs these"


def bare_uvloop(sizes: Sizes) -> dict[str, Any]:
    with _process([sys.executable, "-m", "bench.bare_http"],
                  re.compile(rb"^(\d+)$")) as (port,):
        return _wrk(port, sizes)


def fastinvoke_serve(sizes: Sizes) -> dict[str, Any]:
    with _serve() as port:
        _wrk(port, QUICK, warmup=True)  # the pool grows to the connections' demand
        return _wrk(port, sizes)


def boto3_invoke(sizes: Sizes) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    with _serve() as port:
        client = boto3.client(
            "lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
            config=Config(retries={"max_attempts": 0}))

        def call() -> bytes:
            return client.invoke(FunctionName="add", Payload=ADD_EVENT_BYTES)["Payload"].read()

        for _ in range(sizes.warmup_calls):
            if call() != ADD_RESULT:
                raise AssertionError(f"wrong answer: {call()!r}")
        samples = []
        clock = time.perf_counter_ns
        for _ in range(sizes.latency_calls // 3):  # a boto3 call costs ~1 ms of CPU
            started = clock()
            call()
            samples.append(clock() - started)
        client.close()
    return {"metrics": latency_us(samples), "samples": len(samples)}


def _wrk(port: int, sizes: Sizes, warmup: bool = False, path: str = INVOKE_PATH,
         body: bytes | None = ADD_EVENT_BYTES) -> dict[str, Any]:
    """wrk's rate over ``CONNECTIONS`` connections: a POST of ``body`` to ``path``, or a
    GET (``body`` None)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(WRK_MISSING)
    seconds = 2 if sizes is QUICK or warmup else 5
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if body is not None:
            script.write(f"wrk.method = 'POST'\nwrk.body = '{body.decode()}'\n")
        script.flush()
        done = subprocess.run(
            [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", script.name,
             f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, timeout=seconds + 30, check=True)
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise AssertionError(f"wrk saw failed requests:\n{done.stdout}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)[1])
    total = int(re.search(r"(\d+) requests in", done.stdout)[1])
    return {"metrics": {"req_per_s": rate}, "samples": total}


@contextmanager
def _serve() -> Iterator[int]:
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        template = Path(tmp) / "template.yaml"
        template.write_text(json.dumps({"Resources": {"add": {
            "Type": "AWS::Serverless::Function",
            "Properties": {"FunctionName": "add", "Handler": "add.lambda_handler",
                           "CodeUri": str(FUNCTIONS_DIR), "MemorySize": MEMORY_MB,
                           "Runtime": f"python3.{sys.version_info.minor}"}}}}))
        command = [sys.executable, "-m", "fastinvoke", "serve", "--port", "0", "--state-dir",
                   str(Path(tmp) / "state"), "--template", str(template)]
        with _process(command, re.compile(rb"^fastinvoke: serving .*:(\d+) ")) as (port,):
            yield port


@contextmanager
def _process(command: list[str], ready: re.Pattern[bytes], count: int = 1
             ) -> Iterator[list[int]]:
    """Run a server until the block ends; its ports from its first ``count`` lines
    matching ``ready`` (readiness by its own word, never a sleep)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        ports = []
        while len(ports) < count:
            line = process.stdout.readline()
            match = ready.match(line)
            if match is None:
                raise AssertionError(f"{command[2:4]} did not start: {line!r}")
            ports.append(int(match[1]))
        yield ports
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
