"""One Invoke interface over every front-end, for the contract suite: the embedded API,
the ZeroMQ endpoint through ``ZmqClient``, and (where it is served) HTTP through boto3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import uvloop

from fastinvoke import Invoker, InvokeResult
from fastinvoke.client import ZmqClient
from fastinvoke.endpoint.server import ZmqEndpoint


class Frontend(Protocol):
    name: str

    def invoke(self, function_name: str, payload: Any = None, **options: Any) -> InvokeResult:
        """Lambda's Invoke: a result, or the ServiceError subclass Lambda answers with."""


class Embedded:
    name = "embedded"

    def __init__(self, invoker: Invoker) -> None:
        self.invoke = invoker.invoke


class Zmq:
    name = "zmq"

    def __init__(self, client: ZmqClient) -> None:
        self.client = client
        self.invoke = client.invoke


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
