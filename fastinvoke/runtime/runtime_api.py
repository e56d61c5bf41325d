"""The Lambda Runtime API (2018-06-01) that a bridge worker serves to its runtime process.

Routes and answers as Lambda's (docs/lambda-behaviour.md, "Runtime API"; RIE's ``rapi``
handlers for the details):

* ``GET /runtime/invocation/next`` waits until there is an event, then answers 200 with
  the event bytes and the ``Lambda-Runtime-*`` headers (empty ones are not sent);
* ``POST /runtime/invocation/{id}/response`` and ``.../error``: 202 ``{"status":"OK"}``;
  400 ``InvalidRequestID`` for an id that is not the invocation in flight; 413
  ``RequestEntityTooLarge`` past 6 MB + 100 bytes (the caller then gets
  ``Function.ResponseSizeTooLarge``); a response in the streaming mode
  (``Lambda-Runtime-Function-Response-Mode: streaming``, chunked) is passed on part by part
  as it arrives (``on_part``), up to 20 MB, an error after it coming in its trailers;
* ``POST /runtime/init/error``: 202 before the first ``/next``;
* a call the runtime's state does not allow: 403 ``InvalidStateTransition`` with RIE's
  state names ("State transition from Started to InvocationResponse failed for runtime...").

HTTP/1.1 with keep-alive on 127.0.0.1, any number of connections, parsed by httptools (the
parser uvicorn uses).  Nothing here waits but ``step``: it polls once, handles what
arrived, and the bridge reads the outcome from the attributes (``waiting``, ``ready_ns``,
``init_error``, ``result``).
"""

from __future__ import annotations

import base64
import binascii
import select
import socket
from collections.abc import Callable
from urllib.parse import unquote

import httptools
import msgspec

from .. import wire
from .._core import monotonic_ns
from ..limits import RESPONSE_PAYLOAD_LIMIT, STREAMED_RESPONSE_LIMIT
from .tracing import trace_id
from .worker import response_too_large

PREFIX = "/2018-06-01/runtime/"
ERROR_TYPE_HEADER = b"lambda-runtime-function-error-type"
ERROR_BODY_HEADER = b"lambda-runtime-function-error-body"  # a streamed response's trailer
RESPONSE_MODE_HEADER = b"lambda-runtime-function-response-mode"
# RIE's names of the runtime's states (internal/lambda/core/runtime_state_names.go).
STARTED = "Started"
RUNNING = "Running"
RESPONSE_SENT = "RuntimeResponseSentState"
INIT_ERROR = "InitError"
_READY = "Ready"
_ACCEPTED = b'{"status":"OK"}'
_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 403: b"Forbidden",
            404: b"Not Found", 405: b"Method Not Allowed", 413: b"Payload Too Large"}
_POLL_IN = select.POLLIN | select.POLLHUP | select.POLLERR
_decode_json = msgspec.json.decode
_encode_json = msgspec.json.encode


def _unwanted(data: bytes) -> None:
    """Where streamed parts go when nobody takes them (never: ``streams`` checks first)."""


def trailer_error(headers: dict[bytes, bytes]) -> tuple[bytes, str] | None:
    """The error a streamed response ended with, in its trailers
    (``Lambda-Runtime-Function-Error-Type`` and ``-Body``, base64 of its JSON)."""
    error_type = headers.get(ERROR_TYPE_HEADER)
    if error_type is None or headers.get(RESPONSE_MODE_HEADER) != b"streaming":
        return None
    try:
        body = base64.b64decode(headers.get(ERROR_BODY_HEADER, b""), validate=True)
    except binascii.Error:
        body = b""
    kind = error_type.decode(errors="replace")
    return body or _error_body(kind, ""), kind


def _too_large_stream() -> tuple[bytes, str]:
    return (_error_body("Function.ResponseSizeTooLarge",
                        "Response payload size exceeded maximum allowed payload size "
                        f"({STREAMED_RESPONSE_LIMIT} bytes)."), "Function.ResponseSizeTooLarge")


def _error_body(error_type: str, message: str) -> bytes:
    return _encode_json({"errorMessage": message, "errorType": error_type})


def _forbidden(state: str, target: str) -> bytes:
    return _error_body("InvalidStateTransition", f"State transition from {state} to {target} "
                       "failed for runtime. Error: State transition is not allowed")


_INVALID_REQUEST_ID = _error_body("InvalidRequestID", "Invalid request ID")
_INVALID_RESPONSE_MODE = _error_body("InvalidFunctionResponseMode",
                                     "Invalid function response mode")
_TOO_LARGE = _error_body("RequestEntityTooLarge", "Exceeded maximum allowed payload size "
                         f"({RESPONSE_PAYLOAD_LIMIT} bytes).")


def _header_value(text: str) -> bytes:
    """A header value that cannot end the header (as Go's net/http writes it)."""
    return text.replace("\r", " ").replace("\n", " ").encode()


def error_type_of(headers: dict[bytes, bytes], body: bytes) -> str:
    """The errorType of a posted error: the document's own, else the header's (as RIE
    keeps it, ``Runtime.*`` or ``Function.*`` only), else ``Runtime.Unknown``."""
    try:
        document = _decode_json(body)
    except msgspec.DecodeError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("errorType"), str):
        return document["errorType"]
    header = headers.get(ERROR_TYPE_HEADER, b"").decode(errors="replace")
    return header if header.startswith(("Runtime.", "Function.")) else "Runtime.Unknown"


class _Connection:
    """One connection from the runtime; httptools calls the ``on_*`` methods."""

    __slots__ = ("api", "sock", "parser", "url", "headers", "body", "size", "streaming")

    def __init__(self, api: RuntimeApi, sock: socket.socket) -> None:
        self.api = api
        self.sock = sock
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.streaming = False  # its body is a streamed response, passed on as it comes

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.body = []
        self.size = 0
        self.streaming = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if self.headers.get(b"expect", b"").lower() == b"100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.headers.get(RESPONSE_MODE_HEADER) == b"streaming":
            self.streaming = self.api.streams(self.url)
            if self.streaming:  # told with the first part
                self.api.content_type = self.headers.get(
                    b"content-type", b"application/octet-stream").decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.streaming:
            if self.size <= STREAMED_RESPONSE_LIMIT:
                self.api.on_part(body)
        elif self.size <= RESPONSE_PAYLOAD_LIMIT:  # past it, only counted: the answer is 413
            self.body.append(body)

    def on_message_complete(self) -> None:
        path = unquote(self.url.split(b"?", 1)[0].decode("latin-1"))
        self.api.handle(self, self.parser.get_method(), path, self.headers,
                        b"".join(self.body), self.size)

    def reply(self, status: int, body: bytes, headers: bytes = b"") -> None:
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
            status, _REASONS[status], len(body))
        try:
            self.sock.sendall(head + headers + b"\r\n" + body)
        except OSError:  # the runtime closed it or died: its end is noticed by its pidfd
            self.api.close(self)
            return
        if not self.parser.should_keep_alive():
            self.api.close(self)


class RuntimeApi:
    """The Runtime API of one worker, on a free port of 127.0.0.1 (``address``).

    State as RIE keeps it: ``Started`` until the runtime's first ``/next`` (then
    ``ready_ns`` is set) or ``/init/error`` (``InitError``, ``init_error`` set);
    ``Running`` while it waits for an event or handles one (``current``); then
    ``RuntimeResponseSentState`` once it answered (``result`` set) until its next ``/next``.
    ``waiting`` is the connection whose ``/next`` waits for an event.
    """

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.setblocking(False)
        host, port = self.listener.getsockname()
        self.address = f"{host}:{port}"  # AWS_LAMBDA_RUNTIME_API: host:port, no scheme
        self.poller = select.poll()
        self.poller.register(self.listener, select.POLLIN)
        self.connections: dict[int, _Connection] = {}
        self.watched: set[int] = set()
        # Where a streamed response's parts go as they come (the bridge's link), and its
        # content type, until its first part has gone.
        self.on_part: Callable[[bytes], None] = _unwanted
        self.content_type = ""
        self.reset()

    def reset(self) -> None:
        """Forget the previous runtime process: a new one starts (Init again)."""
        for connection in list(self.connections.values()):
            self.close(connection)
        self.state = STARTED
        self.waiting: _Connection | None = None
        self.ready_ns = 0
        self.init_error: tuple[bytes, str] | None = None
        self.current: str | None = None  # the request id of the invocation in flight
        self.stream_parts = False  # its caller takes a streamed response part by part
        self.result: tuple[bytes, str | None] | None = None  # its payload and errorType

    def watch(self, fd: int) -> None:
        """Have ``step`` report when ``fd`` (the runtime's pidfd) becomes readable."""
        self.poller.register(fd, select.POLLIN)
        self.watched.add(fd)

    def unwatch(self, fd: int) -> None:
        self.poller.unregister(fd)
        self.watched.discard(fd)

    def step(self, timeout_ms: int | None) -> bool:
        """Wait up to ``timeout_ms`` (None: no limit) and handle what arrived; True when a
        watched fd is readable."""
        watched = False
        for fd, _ in self.poller.poll(timeout_ms):
            if fd in self.watched:
                watched = True
            elif fd == self.listener.fileno():
                self._accept()
            elif (connection := self.connections.get(fd)) is not None:
                self._read(connection)
        return watched

    def streams(self, url: bytes) -> bool:
        """Whether the request to ``url`` is the current invocation's streamed response,
        which its caller takes part by part (else the parts are gathered, as when a
        caller of Invoke gets the whole response)."""
        path = unquote(url.split(b"?", 1)[0].decode("latin-1"))
        return (self.stream_parts and self.state == RUNNING and self.current is not None
                and path == f"{PREFIX}invocation/{self.current}/response")

    def begin(self, invoke: wire.Invoke) -> bool:
        """Answer the waiting ``/next`` with ``invoke``; False if no runtime waits for it."""
        connection = self.waiting
        if connection is None:
            return False
        self.waiting = None
        self.current = invoke.request_id
        self.stream_parts = invoke.stream
        self.result = None
        headers = [b"Lambda-Runtime-Aws-Request-Id: ", invoke.request_id.encode(),
                   b"\r\nLambda-Runtime-Deadline-Ms: ", b"%d" % invoke.deadline_ms,
                   b"\r\nLambda-Runtime-Invoked-Function-Arn: ", invoke.invoked_arn.encode(),
                   b"\r\n"]
        for name, value in ((b"Lambda-Runtime-Trace-Id", trace_id(invoke.trace_id)),
                            (b"Lambda-Runtime-Client-Context", invoke.client_context),
                            (b"Lambda-Runtime-Cognito-Identity", invoke.identity)):
            if value:
                headers += (name, b": ", _header_value(value), b"\r\n")
        connection.reply(200, invoke.event, b"".join(headers))
        return True

    def close(self, connection: _Connection) -> None:
        if self.connections.pop(connection.sock.fileno(), None) is not None:
            self.poller.unregister(connection.sock)
        if self.waiting is connection:
            self.waiting = None
        connection.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(True)  # sends block; reads happen only once poll says readable
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections[sock.fileno()] = _Connection(self, sock)
            self.poller.register(sock, _POLL_IN)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(262144)
        except OSError:
            data = b""
        if not data:
            self.close(connection)
            return
        try:
            connection.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            connection.reply(400, _error_body("InvalidRequestFormat",
                                              f"Malformed HTTP request: {exc}"))
            self.close(connection)

    # -- routes ---------------------------------------------------------------------------

    def handle(self, connection: _Connection, method: bytes, path: str,
               headers: dict[bytes, bytes], body: bytes, size: int) -> None:
        route = path[len(PREFIX):] if path.startswith(PREFIX) else None
        if route == "invocation/next":
            if method != b"GET":
                return connection.reply(405, _error_body("MethodNotAllowed", "Use GET"))
            return self._next(connection)
        if route == "init/error":
            if method != b"POST":
                return connection.reply(405, _error_body("MethodNotAllowed", "Use POST"))
            return self._init_error(connection, headers, body)
        if route is not None and route.startswith("invocation/"):
            request_id, _, action = route[len("invocation/"):].rpartition("/")
            if action in ("response", "error") and request_id:
                if method != b"POST":
                    return connection.reply(405, _error_body("MethodNotAllowed", "Use POST"))
                return self._outcome(connection, request_id, action, headers, body, size)
        connection.reply(404, _error_body(
            "NotFound", f"No Runtime API route {method.decode()} {path}: the routes are "
            f"GET {PREFIX}invocation/next, POST {PREFIX}invocation/<id>/response, "
            f"POST {PREFIX}invocation/<id>/error and POST {PREFIX}init/error"))

    def _next(self, connection: _Connection) -> None:
        if self.state == INIT_ERROR:
            return connection.reply(403, _forbidden(self.state, _READY))
        if self.state == STARTED:
            self.ready_ns = monotonic_ns()
        self.state = RUNNING
        if self.waiting is not None and self.waiting is not connection:
            self.close(self.waiting)  # abandoned by the runtime for this newer request
        self.waiting = connection

    def _init_error(self, connection: _Connection, headers: dict[bytes, bytes],
                    body: bytes) -> None:
        if self.state != STARTED:
            return connection.reply(403, _forbidden(self.state, INIT_ERROR))
        self.state = INIT_ERROR
        self.init_error = (body, error_type_of(headers, body))
        connection.reply(202, _ACCEPTED)

    def _outcome(self, connection: _Connection, request_id: str, action: str,
                 headers: dict[bytes, bytes], body: bytes, size: int) -> None:
        target = "InvocationResponse" if action == "response" else "InvocationErrorResponse"
        if self.state != RUNNING:
            return connection.reply(403, _forbidden(self.state, target))
        if request_id != self.current:
            return connection.reply(400, _INVALID_REQUEST_ID)
        status, answer = 202, _ACCEPTED
        if action == "error":
            self.result = (body, error_type_of(headers, body))
        elif headers.get(RESPONSE_MODE_HEADER, b"streaming") != b"streaming":
            # Buffered or streamed, the caller gets the whole response; nothing else exists.
            mode = headers[RESPONSE_MODE_HEADER].decode(errors="replace")
            self.result = (_error_body(
                "Runtime.InvalidResponseModeHeader",
                f"Invalid Lambda-Runtime-Function-Response-Mode '{mode}': send 'streaming' "
                "or no such header"), "Runtime.InvalidResponseModeHeader")
            status, answer = 400, _INVALID_RESPONSE_MODE
        elif connection.streaming:  # its parts went on as they came
            self.result = _too_large_stream() if size > STREAMED_RESPONSE_LIMIT else (
                trailer_error(headers) or (b"", None))
        elif size > RESPONSE_PAYLOAD_LIMIT:
            self.result = response_too_large()
            status, answer = 413, _TOO_LARGE
        else:  # a response, or a streamed one gathered whole for a caller of Invoke
            self.result = trailer_error(headers) or (body, None)
        self.state = RESPONSE_SENT
        self.current = None
        connection.reply(status, answer)
