"""A function URL in ``InvokeMode: RESPONSE_STREAM``: the response goes to the client as
the function writes it.  One whose content type is
``application/vnd.awslambda.http-integration-response`` (``awslambda.HttpResponseStream
.from``) begins with a JSON prelude (``statusCode``, ``headers``, ``cookies``) and 8 NUL
bytes, the body after them; any other is the body, with status 200 and its content type
(AWS Lambda Developer Guide, "Response streaming for Lambda functions")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ..errors import ServiceError
from ..http.messages import Response, StreamingResponse
from ..invoker import Invoker
from .gateway import failed, log, refused
from .responses import INTERNAL, gateway_error

HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
_SEPARATOR = b"\0" * 8
_MAX_PRELUDE = 64 * 1024


async def stream_answer(invoker: Invoker, function: str, event: dict[str, Any],
                        where: str) -> Response:
    """Invoke ``function`` and answer with its response as it comes."""
    try:
        stream = await invoker.ainvoke_stream(function, event)
    except ServiceError as error:
        return refused(error, where)
    parts = aiter(stream)
    first = await anext(parts, None)
    if first is None:  # it ended without writing anything
        assert stream.result is not None
        if stream.result.function_error is not None:
            return failed(stream.result.payload, where)
        return Response(200)
    if stream.content_type != HTTP_INTEGRATION:
        return StreamingResponse(200, _body(first, parts), [("Content-Type",
                                                             stream.content_type)])
    head = first
    while _SEPARATOR not in head and len(head) < _MAX_PRELUDE:
        more = await anext(parts, None)
        if more is None:
            break
        head += more
    prelude, separator, body = head.partition(_SEPARATOR)
    try:
        document = msgspec.json.decode(prelude) if separator else None
    except msgspec.DecodeError:
        document = None
    if not isinstance(document, dict):
        log(where, "the streamed response's prelude is not a JSON object followed by 8 NUL "
                   "bytes (awslambda.HttpResponseStream.from writes them)")
        return gateway_error(*INTERNAL)
    headers = [(str(name), str(value))
               for name, value in (document.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(cookie)) for cookie in document.get("cookies") or []]
    return StreamingResponse(int(document.get("statusCode", 200)), _body(body, parts), headers)


async def _body(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for part in rest:
        yield part
