"""The ZeroMQ endpoint's server: a ROUTER socket watched by the front-end's event loop.

Each request becomes a task awaiting ``Invoker.ainvoke`` (a batch request:
``Invoker.ainvoke_many``, answered with one response per event); its responses go back to
the identity that sent it.  The socket's FD is edge-triggered and sending may consume its
notification, so after every send the loop looks for requests that arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
import zmq

from ..channel import DONTWAIT, SNDMORE, open_channel
from ..errors import InvalidRequestContentException, ServiceError, ServiceException
from ..invoker import Invoker
from ..result import InvokeResult
from .protocol import Request, Response, decode_request, encode

_log = logging.getLogger(__name__)
_encode_json = msgspec.json.encode


def result_response(request_id: int, result: InvokeResult) -> Response:
    """An Invoke's answer, as the response to request ``request_id``."""
    return Response(request_id, result.status_code, result.payload, result.function_error,
                    result.log_result, result.executed_version, result.request_id)


def error_response(request_id: int, error: ServiceError) -> Response:
    return Response(request_id, error.status, _encode_json(error.to_body()),
                    error_type=error.code, error_message=error.message,
                    error_fields={key: str(value) for key, value in error.fields.items()})


class ZmqListener:
    """The endpoint's ROUTER socket bound to ``address``, nothing served on it yet:
    ``fastinvoke serve`` binds its addresses before it starts an Invoker.  An OSError
    (its errno kept: EADDRINUSE...) when it cannot bind; ``address`` is the bound
    endpoint (a ``tcp://...:0`` request gets its real port)."""

    def __init__(self, address: str) -> None:
        self.context = zmq.Context(1)
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 0)  # a response is never dropped for a slow reader
        try:
            self.socket.bind(address)
        except zmq.ZMQError as exc:
            self.close()
            error = OSError(f"cannot bind the ZeroMQ endpoint {address}: {exc}; choose another "
                            "address with --zmq")
            error.errno = exc.errno
            raise error from None
        self.address: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


class ZmqEndpoint:
    """Serve ``invoker`` on ``address`` (``tcp://host:port``, ``ipc://path``, or a
    ``ZmqListener`` already bound, which it then owns).

    ``start(loop)`` begins serving on that loop; ``address`` is then the bound endpoint
    (a ``tcp://...:0`` request gets its real port)."""

    def __init__(self, invoker: Invoker, address: str | ZmqListener) -> None:
        self._invoker = invoker
        listener = address if isinstance(address, ZmqListener) else ZmqListener(address)
        self._context, self._socket = listener.context, listener.socket
        self.address: str = listener.address
        self._channel = open_channel(self._socket)
        self._fd: int = self._socket.getsockopt(zmq.FD)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._invoker.watch_from(loop)  # requests come and go: no add/remove per call
        loop.add_reader(self._fd, self._read)
        self._read()  # edge-triggered: take what arrived before we watched

    def _read(self) -> None:
        channel, loop = self._channel, self._loop
        while channel.readable():
            identity = channel.recv(DONTWAIT)
            body = channel.recv(DONTWAIT)
            while self._socket.get(zmq.RCVMORE):  # not ours: one frame per request
                body = None
                channel.recv(DONTWAIT)
            try:
                request = decode_request(body)
            except (TypeError, msgspec.DecodeError) as exc:
                self._send(identity, error_response(0, InvalidRequestContentException(
                    f"Could not decode the request: {exc}. Send one msgpack frame as "
                    "fastinvoke.endpoint.protocol.Request, e.g. with fastinvoke.client.")))
                continue
            serve = self._serve if request.payloads is None else self._serve_batch
            task = loop.create_task(serve(identity, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, identity: bytes, request: Request) -> None:
        try:
            result = await self._invoker.ainvoke(
                request.function, request.payload, invocation_type=request.invocation_type,
                log_type=request.log_type, client_context=request.client_context,
                qualifier=request.qualifier)
            response = result_response(request.id, result)
        except ServiceError as error:
            response = error_response(request.id, error)
        except Exception as exc:  # the endpoint outlives any one request
            _log.exception("request %d to %s failed", request.id, request.function)
            response = error_response(request.id, ServiceException(
                f"fastinvoke could not serve this request ({type(exc).__name__}: {exc}); "
                "the server's log has the traceback"))
        self._send(identity, response)

    async def _serve_batch(self, identity: bytes, request: Request) -> None:
        first, events = request.id, request.payloads
        assert events is not None
        try:
            if request.payload or request.client_context is not None or \
                    request.qualifier is not None:
                raise InvalidRequestContentException(
                    "A batch Request (payloads) takes no payload, client_context or "
                    "qualifier; send such invocations one Request each.")
            results = await self._invoker.ainvoke_many(
                request.function, events, invocation_type=request.invocation_type,
                log_type=request.log_type)
            responses = [result_response(first + i, result)
                         for i, result in enumerate(results)]
        except ServiceError as error:  # nothing ran: the error is every event's answer
            responses = [error_response(first + i, error) for i in range(len(events))]
        except Exception as exc:
            _log.exception("batch request %d to %s failed", first, request.function)
            error = ServiceException(
                f"fastinvoke could not serve this batch ({type(exc).__name__}: {exc}); "
                "the server's log has the traceback")
            responses = [error_response(first + i, error) for i in range(len(events))]
        self._send_all(identity, responses)

    def _send_all(self, identity: bytes, responses: list[Response]) -> None:
        channel = self._channel
        for response in responses:
            channel.send(identity, SNDMORE)
            channel.send(encode(response))
        if responses and channel.readable():  # sending may have consumed the FD's signal
            self._read()

    def _send(self, identity: bytes, response: Response) -> None:
        self._channel.send(identity, SNDMORE)
        self._channel.send(encode(response))
        if self._channel.readable():  # sending may have consumed the FD's signal
            self._read()

    @property
    def answering(self) -> int:
        """Requests in flight."""
        return len(self._tasks)

    async def drain(self, timeout_s: float) -> None:
        """Stop taking requests; wait up to ``timeout_s`` for those in flight."""
        loop = self._loop
        self._stop_reading()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
        if loop is not None:
            self._invoker.unwatch_from(loop)

    def _stop_reading(self) -> bool:
        """Stop taking requests; whether it was reading until now."""
        if self._loop is None:
            return False
        self._loop.remove_reader(self._fd)
        self._loop = None
        return True

    def close(self) -> None:
        loop = self._loop
        if self._stop_reading():
            self._invoker.unwatch_from(loop)
        for task in self._tasks:
            task.cancel()
        self._socket.close(0)
        self._context.term()
