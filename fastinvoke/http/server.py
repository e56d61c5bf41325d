"""An HTTP/1.1 server on asyncio (uvloop in ``serve``) with httptools' parser.

One ``Connection`` protocol per client.  Keep-alive and pipelining: parsed requests
wait in the connection's queue and one task answers them in order, so responses never
overtake each other; past ``MAX_PIPELINED`` waiting requests the connection stops
reading until the queue drains.  Whatever goes wrong while reading (a malformed or
oversized request, too many headers, a client too slow to send one) is answered in the
same queue, in Lambda's error shape, and then the connection closes; the server keeps
serving others.

Closing after such an answer is a *lingering close*: the client may still be sending
the rest of its request, and closing a socket with unread data makes the kernel send a
reset, which can destroy the answer before the client reads it.  So the server ends its
side (FIN), then reads and drops what still arrives until the client closes, at most
``LINGER_S``.

Timeouts are checked by one sweep over the connections (``_sweep``), not a timer per
request: a request must arrive whole within ``read_timeout_s`` of its first byte (time
the server itself stopped reading, its queue full, does not count), and an idle
keep-alive connection is closed after ``keep_alive_s``.  Answering a request has no
deadline here: a synchronous invocation may legitimately run for 15 minutes.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httptools

from ..errors import InvalidRequestContentException, RequestEntityTooLargeException, ServiceError
from ..errors import ServiceException as InternalError
from .errors import RequestHeaderFieldsTooLargeException, RequestTimeoutException, error_response
from .messages import Request, Response, StreamingResponse

Application = Callable[[Request], Awaitable[Response]]
# How an error the server itself answers looks (a refused request, an application that
# failed): Lambda's shape unless the application speaks another API.
ErrorPage = Callable[[ServiceError, bool], Response]
MAX_PIPELINED = 32
LINGER_S = 5.0  # most time a refused client has to stop sending (see the module docstring)
_HEADER_NAMES: dict[bytes, str] = {}  # header names as sent -> lower-case str
BACKLOG = 1024


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on ``host``:``port`` (one per address ``host`` resolves to, all
    on one port), made as ``loop.create_server`` makes them, for ``HttpServer.listen``.
    An OSError (its errno kept: EADDRINUSE...) when one cannot be made; none is left
    open then.

    ``fastinvoke serve`` binds before anything else, so that a port taken by another
    program stops it before it starts an Invoker, workers or templates."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and sockets[0] is not sock:  # one port for all, as printed
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@dataclass(frozen=True)
class Limits:
    """What one client may send.  The body limit is CreateFunction's (a 50 MB zip in
    base64 in JSON); each operation then applies Lambda's own, smaller limits."""

    max_body: int = 70_167_211
    max_head: int = 64 * 1024
    max_headers: int = 100  # as Python's http.server; an SDK sends about ten
    read_timeout_s: float = 30.0
    keep_alive_s: float = 60.0


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the error says what to answer."""

    def __init__(self, error: ServiceError) -> None:
        self.error = error


class HttpServer:
    """Serve ``application`` over HTTP/1.1.  ``start``, then ``stop_accepting``, ``drain``
    and ``abort`` for a graceful or a quick stop."""

    def __init__(self, application: Application, limits: Limits = Limits(), *,
                 raw: bool = False, error_page: ErrorPage | None = None) -> None:
        """``raw``: requests also carry their headers as sent."""
        self.application = application
        self.limits = limits
        self.raw = raw
        self.error_page: ErrorPage = error_page or _lambda_error
        self.connections: set[Connection] = set()
        self.stopping = False
        self.answering = 0  # requests handed to the application and not yet answered
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()  # set whenever ``answering`` is 0
        self._idle.set()

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host``:``port`` (0: any free port); returns the port."""
        return await self.listen(bind(host, port))

    async def listen(self, sockets: list[socket.socket]) -> int:
        """Serve on ``sockets`` (from ``bind``), which it then owns; returns the port."""
        loop = asyncio.get_running_loop()
        for sock in sockets:
            self._servers.append(await loop.create_server(lambda: Connection(self), sock=sock,
                                                          backlog=BACKLOG))
        self._sweeper = loop.create_task(self._sweep())
        return sockets[0].getsockname()[1]

    async def respond(self, request: Request) -> Response:
        """The application's answer; an unexpected exception is a 500 in Lambda's shape
        (botocore cannot read an empty 5xx)."""
        self.answering += 1
        self._idle.clear()
        try:
            return await self.application(request)
        except ServiceError as error:
            return self.error_page(error, False)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return self.error_page(InternalError(
                "fastinvoke failed to answer this request; its log (stderr) has the traceback"),
                False)
        finally:
            self.answering -= 1
            if self.answering == 0:
                self._idle.set()

    def stop_accepting(self) -> None:
        """Close the listening sockets; connections close after the response in progress
        and idle ones at once."""
        self.stopping = True
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close_if_idle()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every request being answered has its answer, at most ``timeout_s``;
        True when none is left."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def abort(self) -> None:
        """Close every connection now."""
        self.stopping = True
        for server in self._servers:
            server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.abort()

    async def _sweep(self) -> None:
        limits = self.limits
        period = min(limits.read_timeout_s, limits.keep_alive_s, 4.0) / 4
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for connection in list(self.connections):
                if connection.lingering_until:
                    if now > connection.lingering_until:
                        connection.abort()
                elif connection.reading_since and not connection.paused and \
                        now - connection.reading_since > limits.read_timeout_s:
                    connection.refuse(RequestTimeoutException(
                        f"The request did not arrive whole within {limits.read_timeout_s:g} "
                        "seconds; send it again, faster"))
                elif connection.idle_since and now - connection.idle_since > limits.keep_alive_s:
                    connection.abort()


class Connection(asyncio.Protocol):
    """One client connection.  Invariant: ``reading_since`` is set while a request is
    partly read, ``idle_since`` while nothing is read, queued or being answered."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Request | Response] = deque()
        self.answering: asyncio.Task[None] | None = None
        self.reading_since = 0.0
        self.idle_since = 0.0
        self.broken = False  # an error is queued: read nothing more, close after it
        self.peer_done = False  # the client half-closed: close once answered
        self.paused = False
        self.paused_at = 0.0
        self.lingering_until = 0.0  # answered and half-closed: drop input until then
        self._writable: asyncio.Future[None] | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._head_size = 0
        self._header_count = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._raw: list[tuple[str, str]] | None = None
        self.client = ""

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if isinstance(peer, tuple) else ""
        self.idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.reading_since = self.idle_since = 0.0
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.broken:  # the rest of a refused request, or lingering: dropped
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refusal = exc.__context__
            if not isinstance(refusal, _Refused):
                raise
            self.refuse(refusal.error)
        except httptools.HttpParserUpgrade:
            self.refuse(InvalidRequestContentException(
                "Protocol upgrades are not supported; send plain HTTP/1.1 requests"))
        except httptools.HttpParserError as exc:
            self.refuse(InvalidRequestContentException(
                f"Malformed HTTP request ({exc}); send a valid HTTP/1.1 request"))

    def eof_received(self) -> bool:
        """The client sent all it will: answer what is queued, then close (returning
        True keeps our side open until then)."""
        self.peer_done = True
        if self.lingering_until:
            return False  # the client has stopped sending: close now
        if self.reading_since and not self.broken:
            self.refuse(InvalidRequestContentException(
                "The connection was half-closed in the middle of a request; send it whole"))
        return self.answering is not None

    def pause_writing(self) -> None:
        self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.reading_since = self.loop.time()
        self.idle_since = 0.0
        self._url = b""
        self._headers = {}
        self._head_size = 0
        self._header_count = 0
        self._body = []
        self._body_size = 0
        if self.server.raw:
            self._raw = []

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            raise _Refused(RequestHeaderFieldsTooLargeException(
                f"The request has more than {self.limits.max_headers} headers; send fewer"))
        if self._head_size > self.limits.max_head:
            raise _Refused(RequestHeaderFieldsTooLargeException(
                f"The request line and headers exceed {self.limits.max_head} bytes; send "
                "fewer or shorter headers"))
        key = _HEADER_NAMES.get(name)  # a client sends the same names every request
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_HEADER_NAMES) >= 256:
                _HEADER_NAMES.clear()  # names are the client's: keep only recent ones
            _HEADER_NAMES[name] = key
        text = value.decode("latin-1")
        if self._raw is not None:
            self._raw.append((name.decode("latin-1"), text))
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous},{text}"

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and int(length) > self.limits.max_body:
            raise _Refused(_too_large(int(length), self.limits.max_body))
        if self._headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.limits.max_body:
            raise _Refused(_too_large(self._body_size, self.limits.max_body))
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.reading_since = 0.0
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            raise _Refused(InvalidRequestContentException(
                "The request target is not a valid URL path; percent-encode it")) from None
        self._enqueue(Request(
            self.parser.get_method().decode("latin-1"),
            (url.path or b"/").decode("latin-1"),
            (url.query or b"").decode("latin-1"),
            self._headers,
            b"".join(self._body),
            self.parser.should_keep_alive(),
            self._raw,
            self.client,
        ))

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_head:
            raise _Refused(InvalidRequestContentException(
                f"The request line and headers exceed {self.limits.max_head} bytes; "
                "send fewer or shorter headers"))

    # -- answering, in order ----------------------------------------------------------------

    def refuse(self, error: ServiceError) -> None:
        """Answer ``error`` after the requests already queued, then close (lingering)."""
        self.broken = True
        self.reading_since = 0.0
        if self.transport is not None:
            self.transport.pause_reading()
        self._enqueue(self.server.error_page(error, True))

    def _enqueue(self, item: Request | Response) -> None:
        self.queue.append(item)
        if len(self.queue) >= MAX_PIPELINED and not self.paused and not self.broken:
            self.paused = True
            self.paused_at = self.loop.time()
            self.transport.pause_reading()
        if self.answering is None:
            self.answering = self.loop.create_task(self._answer())

    async def _answer(self) -> None:
        queue, transport = self.queue, self.transport
        try:
            while queue:
                item = queue.popleft()
                if self.paused and len(queue) < MAX_PIPELINED // 2:
                    self.paused = False
                    if self.reading_since:  # the client was not slow while we did not read
                        self.reading_since += self.loop.time() - self.paused_at
                    transport.resume_reading()
                if type(item) is Request:
                    response = await self.server.respond(item)
                    keep_alive = item.keep_alive and not response.close
                else:
                    response, keep_alive = item, False
                if transport.is_closing():
                    return  # the client went away; the invocation has still run
                keep_alive = keep_alive and not self.server.stopping
                if type(response) is StreamingResponse:
                    await self._stream(response, keep_alive)
                else:
                    transport.write(response.encode(keep_alive))
                if not keep_alive:
                    queue.clear()
                    if self.broken and not self.peer_done and transport.can_write_eof():
                        self._linger()
                    else:
                        transport.close()
                    return
                if self._writable is not None:
                    await self._writable
        finally:
            self.answering = None
            if self.peer_done:
                transport.close()
            elif not self.reading_since and not self.lingering_until \
                    and not transport.is_closing():
                self.idle_since = self.loop.time()

    async def _stream(self, response: StreamingResponse, keep_alive: bool) -> None:
        """Write ``response``'s parts as chunks as they come, then its last chunk; a client
        that goes away ends the writing (not the invocation)."""
        transport = self.transport
        transport.write(response.head(keep_alive))
        async for part in response.parts:
            if transport.is_closing():
                return
            if part:
                transport.write(b"%x\r\n%s\r\n" % (len(part), part))
                if self._writable is not None:
                    await self._writable
        transport.write(b"0\r\n\r\n")

    def _linger(self) -> None:
        """End our side after the answer, and drop what the client still sends until it
        closes (or ``LINGER_S`` passes), so that no reset destroys the answer."""
        self.lingering_until = self.loop.time() + LINGER_S
        self.transport.write_eof()
        self.transport.resume_reading()

    def close_if_idle(self) -> None:
        if self.answering is None and not self.reading_since and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _lambda_error(error: ServiceError, close: bool) -> Response:
    return error_response(error, close=close)


def _too_large(size: int, limit: int) -> RequestEntityTooLargeException:
    return RequestEntityTooLargeException(
        f"Request must be smaller than {limit} bytes (it has {size}); for larger code, "
        "deploy from a directory with a SAM template")
