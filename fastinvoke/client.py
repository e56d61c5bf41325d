"""``ZmqClient``: invoke functions through a fastinvoke server's ZeroMQ endpoint.

    from fastinvoke.client import ZmqClient

    with ZmqClient("tcp://127.0.0.1:3002") as client:
        client.invoke("add", {"value1": 10, "value2": 20}).payload        # b"30"
        client.invoke_many("add", events)                                 # in batches
        await client.ainvoke("add", {...})                                # asyncio
        await client.ainvoke_many("add", events)                          # both

Results are ``InvokeResult``s, as the embedded API returns them; service errors raise
the same ``ServiceError`` subclasses (``invoke_many`` returns them in place instead, so
that one throttled call does not hide the others' results).  The protocol is in
``fastinvoke.endpoint.protocol``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import msgspec
import zmq

from . import errors
from .endpoint.protocol import Request, Response, decode_response, encode
from .result import InvokeResult

DEFAULT_TIMEOUT_S = 930.0  # Lambda's longest timeout, and some margin
DEFAULT_BATCH = 256  # payloads per batch request of invoke_many
DEFAULT_DEPTH = 2  # batch requests outstanding: the server has the next when one ends

Outcome = InvokeResult | errors.ServiceError


class ZmqClient:
    """A client of one endpoint.  ``invoke`` and ``invoke_many`` are thread-safe (calls
    take turns); ``ainvoke`` and ``ainvoke_many`` serve any number of concurrent calls on
    each event loop.  ``timeout_s`` bounds the wait for each response (TimeoutError past
    it; a batch's responses come together, when its last invocation ends)."""

    def __init__(self, endpoint: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.timeout_ms = int(timeout_s * 1000)
        self._context = zmq.Context(1)
        self._next_id = 1  # of the synchronous socket, under the lock (ids are per socket)
        self._lock = threading.Lock()
        self._socket: zmq.Socket | None = None
        self._loops: dict[asyncio.AbstractEventLoop, _LoopChannel] = {}

    # -- synchronous ------------------------------------------------------------------------

    def invoke(self, function_name: str, payload: Any = None, *,
               invocation_type: str = "RequestResponse", log_type: str | None = None,
               client_context: str | None = None,
               qualifier: str | None = None) -> InvokeResult:
        """One invocation, as ``Invoker.invoke`` (service errors raise)."""
        body = _body(payload)
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            socket = self._sync_socket()
            socket.send(encode(Request(request_id, function_name, body, invocation_type,
                                       log_type, client_context, qualifier)))
            while True:
                response = self._receive(socket)
                if response.id == request_id:
                    return _result(response)

    def invoke_many(self, function_name: str, payloads: Iterable[Any], *,
                    batch: int = DEFAULT_BATCH, depth: int = DEFAULT_DEPTH,
                    invocation_type: str = "RequestResponse",
                    log_type: str | None = None) -> list[Outcome]:
        """Invoke once per payload; results in the payloads' order, a service error in
        place of its result.

        The payloads go ``batch`` to a request, which the server runs as one
        ``Invoker.ainvoke_many`` (streamed through the function's workers, up to one
        invocation per server CPU at once, within its concurrency), with up to ``depth`` requests
        outstanding, so that the server has the next batch when one ends.  A service error
        of a batch (an invalid payload, a throttle) is every one of its payloads' answer,
        and none of that batch ran.  The outstanding requests run at once, as concurrent
        calls: for a function whose reserved concurrency one batch fills, pass ``depth=1``
        or the next batch is throttled.  ``batch=1`` sends each payload as its own request
        (``depth`` then is how many invocations are in flight, as before batch requests
        existed; servers older than batches need it).
        """
        _check_window(batch, depth)
        bodies = [_body(payload) for payload in payloads]
        count = len(bodies)
        results: list[Any] = [None] * count
        if not count:
            return results
        left = [min(batch, count - start) for start in range(0, count, batch)]
        with self._lock:
            first = self._next_id
            self._next_id += count
            socket = self._sync_socket()
            sent = outstanding = done = 0
            while done < count:
                while sent < len(left) and outstanding < depth:
                    start = sent * batch
                    socket.send(encode(_chunk(first + start, function_name,
                                              bodies[start:start + batch], batch,
                                              invocation_type, log_type)))
                    sent += 1
                    outstanding += 1
                response = self._receive(socket)
                index = response.id - first
                if 0 <= index < count and results[index] is None:
                    results[index] = _outcome(response)
                    done += 1
                    left[index // batch] -= 1
                    if not left[index // batch]:
                        outstanding -= 1
                elif response.id == 0 and response.error_type is not None:
                    raise _undecodable(self.endpoint, response)
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
        channel = self._channel()
        request = Request(channel.reserve(1), function_name, _body(payload), invocation_type,
                          log_type, client_context, qualifier)
        try:
            response = await asyncio.wait_for(channel.call(request), self.timeout_ms / 1000)
        except TimeoutError:
            channel.forget(request.id, 1)
            raise self._timeout() from None
        return _result(response)

    async def ainvoke_many(self, function_name: str, payloads: Iterable[Any], *,
                           batch: int = DEFAULT_BATCH, depth: int = DEFAULT_DEPTH,
                           invocation_type: str = "RequestResponse",
                           log_type: str | None = None) -> list[Outcome]:
        """``invoke_many`` for asyncio: the same batches and window; concurrent calls
        share the loop's connection."""
        _check_window(batch, depth)
        channel = self._channel()
        bodies = [_body(payload) for payload in payloads]
        count = len(bodies)
        results: list[Any] = [None] * count
        if not count:
            return results
        first = channel.reserve(count)
        starts = iter(range(0, count, batch))
        timeout_s = self.timeout_ms / 1000

        async def lane() -> None:  # one request outstanding at a time
            for start in starts:
                chunk = bodies[start:start + batch]
                request = _chunk(first + start, function_name, chunk, batch, invocation_type,
                                 log_type)
                try:
                    responses = await asyncio.wait_for(channel.call_many(request, len(chunk)),
                                                       timeout_s)
                except BaseException as exc:
                    channel.forget(request.id, len(chunk))
                    if isinstance(exc, TimeoutError):
                        raise self._timeout() from None
                    raise
                results[start:start + len(chunk)] = [_outcome(r) for r in responses]

        lanes = min(depth, -(-count // batch))
        if lanes == 1:
            await lane()
        else:
            tasks = [asyncio.ensure_future(lane()) for _ in range(lanes)]
            try:
                await asyncio.gather(*tasks)
            except BaseException:  # the first failure ends the call: stop the other lanes
                for task in tasks:
                    task.cancel()
                raise
        return results

    def _channel(self) -> _LoopChannel:
        loop = asyncio.get_running_loop()
        channel = self._loops.get(loop)
        if channel is None:
            channel = self._loops[loop] = _LoopChannel(self._context, self.endpoint, loop)
        return channel

    def _timeout(self) -> TimeoutError:
        return TimeoutError(f"no response from {self.endpoint} within "
                            f"{self.timeout_ms / 1000:g} s")

    # -- common -----------------------------------------------------------------------------

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
    """One DEALER per event loop (used from that loop's thread only); responses resolve
    the futures of their ids, a batch's once all of its ids have answered."""

    def __init__(self, context: zmq.Context, endpoint: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.endpoint = endpoint
        self.loop = loop
        self.next_id = 1
        self.pending: dict[int, asyncio.Future[Response] | _Gather] = {}
        self.fd = self.socket.getsockopt(zmq.FD)
        loop.add_reader(self.fd, self._pump)

    def reserve(self, count: int) -> int:
        """The first of ``count`` fresh request ids."""
        first = self.next_id
        self.next_id += count
        return first

    async def call(self, request: Request) -> Response:
        future = self.loop.create_future()
        self.pending[request.id] = future
        self.socket.send(encode(request))
        self._pump()  # sending may have consumed the FD's signal
        return await future

    async def call_many(self, request: Request, count: int) -> list[Response]:
        """A request answered by ``count`` responses, ids ``request.id`` on."""
        gather = _Gather(request.id, count, self.loop.create_future())
        pending = self.pending
        for request_id in range(request.id, request.id + count):
            pending[request_id] = gather
        self.socket.send(encode(request))
        self._pump()
        return await gather.future

    def forget(self, first: int, count: int) -> None:
        """Stop waiting for ids ``first`` ... ``first + count - 1``."""
        for request_id in range(first, first + count):
            self.pending.pop(request_id, None)

    def _pump(self) -> None:
        socket, pending = self.socket, self.pending
        while socket.get(zmq.EVENTS) & zmq.POLLIN:
            response = decode_response(socket.recv(zmq.NOBLOCK))
            waiter = pending.pop(response.id, None)
            if waiter is None:
                if response.id == 0 and response.error_type is not None:
                    self._refused(response)
            elif type(waiter) is _Gather:
                waiter.add(response)
            elif not waiter.done():
                waiter.set_result(response)

    def _refused(self, response: Response) -> None:
        """The server could not decode a request: one of the batches (a single request
        never gets here from this client), which one it cannot say; all of them fail."""
        error = _undecodable(self.endpoint, response)
        for gather in {id(w): w for w in self.pending.values() if type(w) is _Gather}.values():
            if not gather.future.done():
                gather.future.set_exception(error)

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.remove_reader(self.fd)
        self.socket.close(0)


class _Gather:
    """The responses of one batch request, in its ids' order."""

    __slots__ = ("first", "future", "left", "responses")

    def __init__(self, first: int, count: int, future: asyncio.Future[list[Response]]) -> None:
        self.first = first
        self.left = count
        self.future = future
        self.responses: list[Any] = [None] * count

    def add(self, response: Response) -> None:
        self.responses[response.id - self.first] = response
        self.left -= 1
        if not self.left and not self.future.done():
            self.future.set_result(self.responses)


def _body(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    return msgspec.json.encode(payload)


def _chunk(first: int, function_name: str, bodies: list[bytes], batch: int,
           invocation_type: str, log_type: str | None) -> Request:
    """``bodies`` (ids ``first`` on) as one request: a batch, or with ``batch=1`` the
    single request every server understands."""
    if batch == 1:
        return Request(first, function_name, bodies[0], invocation_type, log_type)
    return Request(first, function_name, None, invocation_type, log_type, payloads=bodies)


def _check_window(batch: int, depth: int) -> None:
    if batch < 1 or depth < 1:
        raise ValueError(f"batch and depth must be at least 1, not {batch} and {depth}")


def _undecodable(endpoint: str, response: Response) -> errors.ServiceError:
    return errors.InvalidRequestContentException(
        f"{endpoint} could not decode a batch request ({response.error_message}): a server "
        "older than batch requests needs batch=1, or an upgrade")


def _outcome(response: Response) -> Outcome:
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
