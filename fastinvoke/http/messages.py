"""A request as the server parsed it, and a response as the application answers it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import msgspec

from ..requests import new_request_id

# Each status line, built once ("HTTP/1.1 200 OK\r\n").
_STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
                 for status in HTTPStatus}


class Request:
    """One HTTP request.  ``headers`` has lower-case names; a repeated header's values
    are joined with commas (RFC 9110 §5.3).  ``path`` and ``query`` are as sent
    (percent-encoded).  From a server that keeps them (``HttpServer(raw=True)``),
    ``raw_headers`` are the headers as sent (names in their case, one pair each);
    ``client`` is the client's address."""

    __slots__ = ("method", "path", "query", "headers", "body", "keep_alive", "raw_headers",
                 "client")

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str],
                 body: bytes, keep_alive: bool, raw_headers: list[tuple[str, str]] | None = None,
                 client: str = "") -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.raw_headers = raw_headers
        self.client = client


class Response:
    """A status, a body and headers; ``close`` ends the connection after it."""

    __slots__ = ("status", "body", "headers", "close")

    def __init__(self, status: int, body: bytes = b"",
                 headers: list[tuple[str, str]] | None = None, close: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []
        self.close = close

    def encode(self, keep_alive: bool) -> bytes:
        """The response's bytes on the wire (HTTP/1.1, with Content-Length)."""
        # The headers as one str, encoded once, and one join with the body: no bytes
        # object per header line, and the body copied once.
        status = _STATUS_LINES.get(self.status) or b"HTTP/1.1 %d Unknown\r\n" % self.status
        headers = "".join([f"{name}: {value}\r\n" for name, value in self.headers])
        end = b"\r\n\r\n" if keep_alive else b"\r\nConnection: close\r\n\r\n"
        return b"".join((status, headers.encode("latin-1"),
                         b"Content-Length: %d" % len(self.body), end, self.body))


class StreamingResponse(Response):
    """A response whose body is written as its parts come (chunked transfer coding)."""

    __slots__ = ("parts",)

    def __init__(self, status: int, parts: AsyncIterator[bytes],
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status, b"", headers)
        self.parts = parts

    def head(self, keep_alive: bool) -> bytes:
        """The status line and headers; each part then goes as a chunk."""
        status = _STATUS_LINES.get(self.status) or b"HTTP/1.1 %d Unknown\r\n" % self.status
        headers = "".join([f"{name}: {value}\r\n" for name, value in self.headers])
        end = b"\r\n\r\n" if keep_alive else b"\r\nConnection: close\r\n\r\n"
        return status + headers.encode("latin-1") + b"Transfer-Encoding: chunked" + end


def json_response(document: Any, status: int = 200) -> Response:
    """``document`` as a Lambda API answer: JSON, with a request id."""
    return Response(status, msgspec.json.encode(document), [
        ("Content-Type", "application/json"), ("x-amzn-RequestId", new_request_id())])
