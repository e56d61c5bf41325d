"""Lambda's response streaming, as the embedded API gives it: a response taken part by part
as the function writes it (``Invoker.invoke_stream``, ``ainvoke_stream``).

A Node.js handler wrapped in ``awslambda.streamifyResponse``, or a custom runtime that
posts its response in the streaming mode, streams it; any other function's response comes
whole, as one part.  Once the parts are read, ``result`` is the invocation's answer: its
``function_error`` and error document if it failed (after the parts it wrote, as
InvokeWithResponseStream's ``InvokeComplete`` reports it), its request id, version and
log tail.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator

from .pool.records import Invocation
from .result import InvokeResult, answer
from .wire import Chunk

_END = None  # after the last part: the invocation is complete


class _Stream:
    def __init__(self, invocation: Invocation, log_type: str | None) -> None:
        self._invocation = invocation
        self._log_type = log_type
        self._parts_seen = False
        self.request_id = invocation.request_id
        self.executed_version = invocation.pool.config.version
        # The response's content type, known with its first part (its own, when streamed;
        # application/json for a function that does not stream).
        self.content_type = ""
        self.result: InvokeResult | None = None  # once the parts are read

    def _last(self) -> bytes | None:
        """The invocation is complete: its result; the whole response if none of it came
        in parts (a function that does not stream)."""
        self.result = answer(self._invocation, self._log_type)
        if not self._parts_seen and self.result.function_error is None:
            self.content_type = "application/json"
            return self.result.payload
        return None

    def _part(self, chunk: Chunk) -> bytes:
        if not self._parts_seen:
            self._parts_seen = True
            self.content_type = chunk.content_type or "application/octet-stream"
        return chunk.data


class ResponseStream(_Stream):
    """The parts of a streamed response, as they come (iterate it once)."""

    def __init__(self, invocation: Invocation, log_type: str | None) -> None:
        super().__init__(invocation, log_type)
        parts: queue.SimpleQueue[Chunk | None] = queue.SimpleQueue()
        self._parts = parts
        invocation.on_chunk = parts.put  # (the dispatcher's lock held: never blocks)
        invocation.callback = lambda _: parts.put(_END)

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := self._parts.get()) is not _END:
            yield self._part(chunk)
        whole = self._last()
        if whole:
            yield whole


class AsyncResponseStream(_Stream):
    """``ResponseStream`` for asyncio: ``async for`` its parts on the loop it was made on."""

    def __init__(self, invocation: Invocation, log_type: str | None) -> None:
        super().__init__(invocation, log_type)
        loop = asyncio.get_running_loop()
        parts: asyncio.Queue[Chunk | None] = asyncio.Queue()
        self._parts = parts
        # From whichever thread reads the workers' replies, in the order they came.
        invocation.on_chunk = lambda chunk: loop.call_soon_threadsafe(parts.put_nowait, chunk)
        invocation.callback = lambda _: loop.call_soon_threadsafe(parts.put_nowait, _END)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._parts.get()) is not _END:
            yield self._part(chunk)
        whole = self._last()
        if whole:
            yield whole
