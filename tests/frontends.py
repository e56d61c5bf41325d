"""One Invoke interface over every front-end, for the contract suite: the embedded API,
HTTP through boto3 and the ZeroMQ endpoint through ``ZmqClient`` (both of a real
``fastinvoke serve``), and a ZeroMQ endpoint served in this process for unit tests."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvloop
from botocore.exceptions import ClientError
from helpers import FUNCTIONS, MakeFunction
from http_server import Server, zip_of
from prometheus_client.parser import text_string_to_metric_families

from fastinvoke import Invoker, InvokeResult
from fastinvoke.client import ZmqClient
from fastinvoke.endpoint.server import ZmqEndpoint
from fastinvoke.errors import service_error

_NAMES = itertools.count(1)


class Embedded:
    """The Invoker in this process."""

    name = "embedded"

    def __init__(self, invoker: Invoker, make_function: MakeFunction) -> None:
        self.invoke = invoker.invoke
        self.meter = invoker.meter
        self.create: Callable[..., str] = make_function


class Served:
    """A ``fastinvoke serve`` process, invoked over HTTP (boto3) or ZeroMQ; functions are
    created through boto3 (a zip of the handler's module), meters read from /metrics."""

    def __init__(self, server: Server, kind: str) -> None:
        self.name = kind
        self.server = server
        self.boto = server.client()
        self.zmq = ZmqClient(server.zmq, timeout_s=60) if kind == "zmq" else None
        self.invoke = self.zmq.invoke if self.zmq is not None else self._invoke_http

    def create(self, handler: str, *, timeout_s: int = 30,
               reserved_concurrency: int | None = None) -> str:
        name = f"{handler.split('.')[0].strip('_')}-{next(_NAMES)}"
        module = handler.rsplit(".", 1)[0]
        source = Path(FUNCTIONS, module + ".py").read_text()
        self.boto.create_function(
            FunctionName=name, Runtime="python3.11", Handler=handler, Timeout=timeout_s,
            Role="arn:aws:iam::123456789012:role/lambda", Code={"ZipFile": zip_of(
                {module + ".py": source})})
        if reserved_concurrency is not None:
            self.boto.put_function_concurrency(FunctionName=name,
                                               ReservedConcurrentExecutions=reserved_concurrency)
        return name

    def meter(self, name: str) -> dict[str, float]:
        import urllib.request

        with urllib.request.urlopen(self.server.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        figures = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("function") == name and sample.name.endswith("_total"):
                    figures[sample.name[len("fastinvoke_"):-len("_total")]] = sample.value
        return figures

    def _invoke_http(self, function_name: str, payload: Any = None, *,
                     invocation_type: str = "RequestResponse", log_type: str | None = None,
                     client_context: str | None = None,
                     qualifier: str | None = None) -> InvokeResult:
        import json

        body = payload if isinstance(payload, bytes) else json.dumps(payload or {}).encode()
        options: dict[str, Any] = {"FunctionName": function_name,
                                   "InvocationType": invocation_type, "Payload": body}
        for key, value in (("LogType", log_type), ("ClientContext", client_context),
                           ("Qualifier", qualifier)):
            if value is not None:
                options[key] = value
        try:
            answer = self.boto.invoke(**options)
        except ClientError as exc:
            fields = {key: value for key, value in exc.response.items()
                      if key not in ("Error", "ResponseMetadata", "Message", "message")}
            raise service_error(exc.response["Error"]["Code"],
                                exc.response["Error"]["Message"], fields) from None
        return InvokeResult(answer["StatusCode"], answer["Payload"].read(),
                            answer.get("FunctionError"), answer.get("LogResult"),
                            answer.get("ExecutedVersion"),
                            answer["ResponseMetadata"]["RequestId"])

    def close(self) -> None:
        if self.zmq is not None:
            self.zmq.close()


@contextmanager
def zmq_endpoint(invoker: Invoker, address: str) -> Iterator[ZmqEndpoint]:
    """``invoker`` served on ``address`` by an endpoint on its own uvloop thread."""
    loop = uvloop.new_event_loop()
    endpoint = ZmqEndpoint(invoker, address)
    started = threading.Event()

    def serve() -> None:
        endpoint.start(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    thread = threading.Thread(target=serve, name="zmq-endpoint")
    thread.start()
    started.wait()
    try:
        yield endpoint
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        endpoint.close()
        loop.close()
