"""The dashboard's routes on the Lambda API's port: the page (``/``), uPlot's files
(``/dashboard/...``) and the figures pushed once a second (``/dashboard/events``,
server-sent events).  They are open, as ``/metrics`` is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec

from ..dashboard.snapshot import snapshot
from ..invoker import Invoker
from .messages import Response, StreamingResponse

_HERE = Path(__file__).parent.parent / "dashboard"
_FILES = {  # path -> (file, content type)
    "/": (_HERE / "page.html", "text/html; charset=utf-8"),
    "/dashboard/uPlot.iife.min.js": (_HERE / "static" / "uPlot.iife.min.js",
                                     "text/javascript; charset=utf-8"),
    "/dashboard/uPlot.min.css": (_HERE / "static" / "uPlot.min.css", "text/css; charset=utf-8"),
}
PATHS = (*_FILES, "/dashboard/events")
_EVERY_S = 1.0


def answer(path: str, invoker: Invoker, stopping: Callable[[], bool]) -> Response:
    """The answer to ``GET path`` (one of ``PATHS``)."""
    if path == "/dashboard/events":
        return StreamingResponse(200, _events(invoker, stopping), [
            ("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
    file, content_type = _FILES[path]
    return Response(200, file.read_bytes(), [("Content-Type", content_type)])


async def _events(invoker: Invoker, stopping: Callable[[], bool]) -> AsyncIterator[bytes]:
    """The figures, once a second, until the server stops."""
    while not stopping():
        document = await asyncio.to_thread(snapshot, invoker)
        yield b"data: " + msgspec.json.encode(document) + b"\n\n"
        await asyncio.sleep(_EVERY_S)
