"""API Gateway routes (``fastinvoke serve --template``'s API port) against the Lambda
Invoke API of the same server, for the same function.

The function answers an HTTP API route (``GET /hello/{name}``, payload 2.0).  Through
the Invoke API it is sent the event the route would build (captured from the route
by the same code), so both sides run the same handler on the same event; the route's side
also builds that event and converts the answer, as API Gateway does.

* latency: one keep-alive connection, one request at a time, p50/p99;
* throughput: wrk, 64 keep-alive connections on one thread, for a fixed time, after an
  untimed run that lets the pool grow (every answer must be a 200).

``sam local start-api`` cannot run here (it needs Docker); bench/README.md gives its
published figures for comparison.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .bench_http import _process, _wrk
from .data import QUICK, Sizes
from .stats import latency_us

FUNCTIONS_DIR = Path(__file__).resolve().parent / "functions"
ROUTE = "/hello/bench"
INVOKE = "/2015-03-31/functions/hello/invocations"
ANSWER = {"hello": "bench"}
_PORTS = re.compile(
    rb"^fastinvoke: serving (?:the Lambda API|\d+ API routes) on http://[^:]+:(\d+)")


@contextmanager
def _serve() -> Iterator[tuple[int, int, bytes]]:
    """The server's Lambda API port, its API port, and the event the route builds."""
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        template = Path(tmp) / "template.yaml"
        template.write_text(json.dumps({"Resources": {"hello": {
            "Type": "AWS::Serverless::Function",
            "Properties": {"FunctionName": "hello", "Handler": "api_hello.handler",
                           "CodeUri": str(FUNCTIONS_DIR), "MemorySize": 1769,
                           "Runtime": f"python3.{sys.version_info.minor}",
                           "Events": {"Hello": {"Type": "HttpApi", "Properties": {
                               "Path": "/hello/{name}", "Method": "get"}}}}}}}))
        command = [sys.executable, "-m", "fastinvoke", "serve", "--port", "0", "--api-port",
                   "0", "--state-dir", str(Path(tmp) / "state"), "--template", str(template)]
        with _process(command, _PORTS, count=2) as (lambda_port, api_port):
            yield lambda_port, api_port, _captured_event(api_port)


def _captured_event(api_port: int) -> bytes:
    """The event the route builds for a GET of ``ROUTE``, made by the code the server
    builds it with."""
    from fastinvoke.apigw.events import build_event
    from fastinvoke.apigw.routes import HTTP, Api, Route
    from fastinvoke.http.messages import Request

    route = Route(Api("ServerlessHttpApi", HTTP, "$default"), "GET", "/hello/{name}", "hello",
                  "2.0", "hello.Hello")
    request = Request("GET", ROUTE, "", {"host": f"127.0.0.1:{api_port}"}, b"", True, [],
                      "127.0.0.1")
    return json.dumps(build_event(route, request, {"name": "bench"}, "0" * 36)).encode()


def _latency(port: int, method: str, path: str, body: bytes | None,
             sizes: Sizes) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call() -> Any:
        connection.request(method, path, body)
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise AssertionError(f"{method} {path}: {response.status} {data!r}")
        return json.loads(data)

    for _ in range(sizes.warmup_calls):
        if call() != ANSWER:
            raise AssertionError(f"wrong answer: {call()!r}")
    samples = []
    clock = time.perf_counter_ns
    for _ in range(sizes.latency_calls):
        started = clock()
        call()
        samples.append(clock() - started)
    connection.close()
    return {"metrics": latency_us(samples), "samples": len(samples)}


def invoke_latency(sizes: Sizes) -> dict[str, Any]:
    with _serve() as (lambda_port, _, event):
        return _latency(lambda_port, "POST", INVOKE, event, sizes)


def route_latency(sizes: Sizes) -> dict[str, Any]:
    with _serve() as (_, api_port, _):
        return _latency(api_port, "GET", ROUTE, None, sizes)


def invoke_throughput(sizes: Sizes) -> dict[str, Any]:
    with _serve() as (lambda_port, _, event):
        _wrk(lambda_port, QUICK, warmup=True, path=INVOKE, body=event)
        return _wrk(lambda_port, sizes, path=INVOKE, body=event)


def route_throughput(sizes: Sizes) -> dict[str, Any]:
    with _serve() as (_, api_port, _):
        _wrk(api_port, QUICK, warmup=True, path=ROUTE, body=None)
        return _wrk(api_port, sizes, path=ROUTE, body=None)

