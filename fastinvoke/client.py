"""``ZmqClient``: invoke functions through a fastinvoke server's ZeroMQ endpoint.

    from fastinvoke.client import ZmqClient

    with ZmqClient("tcp://127.0.0.1:3002") as client:
        client.invoke("add", {"value1": 10, "value2": 20}).payload        # b"30"
        client.invoke_many("add", events, depth=64)                       # pipelined
        await client.ainvoke("add", {...})                                # asyncio

Results are ``InvokeResult``s, as the embedded API returns them; service errors raise
the same ``ServiceError`` subclasses (``invoke_many`` returns them in place instead, so
that one throttled call does not hide the others' results).  The protocol is in
``fastinvoke.endpoint.protocol``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import msgspec
import zmq

from . import errors
from .endpoint.protocol import Request, Response, decode_response, encode
from .invoker import InvokeResult

DEFAULT_TIMEOUT_S = 930.0  # Lambda's longest timeout, and some margin


class ZmqClient:
    """A client of one endpoint.  ``invoke`` and ``invoke_many`` are thread-safe (calls
    take turns); ``ainvoke`` serves any number of concurrent calls on each event loop.
    ``timeout_s`` bounds the wait for each response (TimeoutError past it)."""

    def __init__(self, endpoint: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.timeout_ms = int(timeout_s * 1000)
        self._context = zmq.Context(1)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._socket: zmq.Socket | None = None
        self._loops: dict[asyncio.AbstractEventLoop, _LoopChannel] = {}

    # -- synchronous ------------------------------------------------------------------------

    def invoke(self, function_name: str, payload: Any = None, *,
               invocation_type: str = "RequestResponse", log_type: str | None = None,
               client_context: str | None = None,
               qualifier: str | None = None) -> InvokeResult:
        """One invocation, as ``Invoker.invoke`` (service errors raise)."""
        request = self._request(function_name, payload, invocation_type, log_type,
                                client_context, qualifier)
        with self._lock:
            socket = self._sync_socket()
            socket.send(encode(request))
            while True:
                response = self._receive(socket)
                if response.id == request.id:
                    return _result(response)

    def invoke_many(self, function_name: str, payloads: Iterable[Any], *, depth: int = 64,
                    invocation_type: str = "RequestResponse",
                    log_type: str | None = None) -> list[InvokeResult | errors.ServiceError]:
        """Invoke once per payload with up to ``depth`` requests outstanding; results in
        the payloads' order, a service error in place of its result."""
        requests = [self._request(function_name, payload, invocation_type, log_type)
                    for payload in payloads]
        slot = {request.id: index for index, request in enumerate(requests)}
        results: list[Any] = [None] * len(requests)
        with self._lock:
            socket = self._sync_socket()
            sent = done = 0
            while done < len(requests):
                while sent < len(requests) and sent - done < depth:
                    socket.send(encode(requests[sent]))
                    sent += 1
                response = self._receive(socket)
                index = slot.pop(response.id, None)
                if index is not None:
                    results[index] = _outcome(response)
                    done += 1
        return results

    def _sync_socket(self) -> zmq.Socket:
        if self._socket is None:
            self._socket = self._context.socket(zmq.DEALER)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.connect(self.endpoint)
        return self._socket

    def _receive(self, socket: zmq.Socket) -> Response:
        if not socket.poll(self.timeout_ms):
            raise TimeoutError(
                f"no response from {self.endpoint} within {self.timeout_ms / 1000:g} s: is "
                "`fastinvoke serve --zmq` running there?")
        return decode_response(socket.recv())

    # -- asyncio ----------------------------------------------------------------------------

    async def ainvoke(self, function_name: str, payload: Any = None, *,
                      invocation_type: str = "RequestResponse", log_type: str | None = None,
                      client_context: str | None = None,
                      qualifier: str | None = None) -> InvokeResult:
        """``invoke`` for asyncio (uvloop too); concurrent calls are pipelined."""
        loop = asyncio.get_running_loop()
        channel = self._loops.get(loop)
        if channel is None:
            channel = self._loops[loop] = _LoopChannel(self._context, self.endpoint, loop)
        request = self._request(function_name, payload, invocation_type, log_type,
                                client_context, qualifier)
        try:
            response = await asyncio.wait_for(channel.call(request), self.timeout_ms / 1000)
        except TimeoutError:
            channel.pending.pop(request.id, None)
            raise TimeoutError(f"no response from {self.endpoint} within "
                               f"{self.timeout_ms / 1000:g} s") from None
        return _result(response)

    # -- common -----------------------------------------------------------------------------

    def _request(self, function_name: str, payload: Any, invocation_type: str,
                 log_type: str | None, client_context: str | None = None,
                 qualifier: str | None = None) -> Request:
        if payload is None:
            body = b""
        elif isinstance(payload, (bytes, bytearray, memoryview)):
            body = bytes(payload)
        else:
            body = msgspec.json.encode(payload)
        return Request(next(self._ids), function_name, body, invocation_type, log_type,
                       client_context, qualifier)

    def close(self) -> None:
        for channel in self._loops.values():
            channel.close()
        self._loops.clear()
        if self._socket is not None:
            self._socket.close(0)
        self._context.term()

    def __enter__(self) -> ZmqClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _LoopChannel:
    """One DEALER per event loop; responses resolve the futures of their ids."""

    def __init__(self, context: zmq.Context, endpoint: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.loop = loop
        self.pending: dict[int, asyncio.Future[Response]] = {}
        self.fd = self.socket.getsockopt(zmq.FD)
        loop.add_reader(self.fd, self._pump)

    async def call(self, request: Request) -> Response:
        future = self.loop.create_future()
        self.pending[request.id] = future
        self.socket.send(encode(request))
        self._pump()  # sending may have consumed the FD's signal
        return await future

    def _pump(self) -> None:
        socket, pending = self.socket, self.pending
        while socket.get(zmq.EVENTS) & zmq.POLLIN:
            response = decode_response(socket.recv(zmq.NOBLOCK))
            future = pending.pop(response.id, None)
            if future is not None and not future.done():
                future.set_result(response)

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.remove_reader(self.fd)
        self.socket.close(0)


def _outcome(response: Response) -> InvokeResult | errors.ServiceError:
    if response.error_type is None:
        return InvokeResult(response.status, response.payload, response.function_error,
                            response.log_result, response.executed_version,
                            response.request_id)
    return errors.service_error(response.error_type, response.error_message or "",
                                response.error_fields)


def _result(response: Response) -> InvokeResult:
    outcome = _outcome(response)
    if isinstance(outcome, errors.ServiceError):
        raise outcome
    return outcome
