"""A lean HTTP/1.1 keep-alive client for one request shape, sent over and over.

The load generator must not be what limits a run: each connection is an asyncio
protocol with httptools' C parser, the request bytes are built once, and a connection
carries one request at a time (as wrk's do), so a run holds one connection per caller.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytes


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` sends raw request bytes, one at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._lost: Exception | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(cls, host, port)
        return connection

    @property
    def usable(self) -> bool:
        return self._lost is None and self._transport is not None

    async def request(self, raw: bytes) -> Response:
        if not self.usable:
            raise ConnectionError(f"connection closed: {self._lost}")
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"the server closed the connection ({exc or 'EOF'})"))

    def _fail(self, exc: Exception) -> None:
        self._lost = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = {}
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        response = Response(self._parser.get_status_code(), self._headers, b"".join(self._body))
        if not self._parser.should_keep_alive():
            self._lost = ConnectionError("the server asked to close the connection")
            self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(response)
