"""The Lambda API's InvokeWithResponseStream (2021-11-15): the response's parts as the
function writes them, framed as AWS's event stream (``PayloadChunk`` events, then
``InvokeComplete`` with ``ErrorCode``/``ErrorDetails``/``LogResult``), as boto3's
``invoke_with_response_stream`` reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from ..payloads import check_log_type
from ..streaming import AsyncResponseStream
from . import eventstream
from .messages import Request, Response, StreamingResponse
from .operation import ApiContext


async def invoke_with_response_stream(api: ApiContext, request: Request, function: str | None,
                                      query: dict[str, str]) -> Response:
    name, qualifier = api.qualified_name(function, query)
    headers = request.headers
    log_type = headers.get("x-amz-log-type")
    check_log_type(log_type)
    if headers.get("x-amz-invocation-type") == "DryRun":
        await api.invoker.ainvoke(name, request.body, invocation_type="DryRun",
                                  qualifier=qualifier)
        return Response(204)
    stream = await api.invoker.ainvoke_stream(
        name, request.body, log_type=log_type,
        client_context=headers.get("x-amz-client-context"), qualifier=qualifier)
    return StreamingResponse(200, _events(stream), [
        ("x-amzn-RequestId", stream.request_id),
        ("Content-Type", "application/vnd.amazon.eventstream"),
        ("X-Amz-Executed-Version", stream.executed_version)])


async def _events(stream: AsyncResponseStream) -> AsyncIterator[bytes]:
    async for part in stream:
        yield eventstream.event("PayloadChunk", part, "application/octet-stream")
    result = stream.result
    assert result is not None  # the parts are read
    complete: dict[str, str] = {}
    if result.function_error is not None:
        try:
            document = msgspec.json.decode(result.payload)
        except msgspec.DecodeError:
            document = {}
        if not isinstance(document, dict):
            document = {}
        complete["ErrorCode"] = str(document.get("errorType") or result.function_error)
        complete["ErrorDetails"] = str(document.get("errorMessage") or "")
    if result.log_result is not None:
        complete["LogResult"] = result.log_result
    yield eventstream.event("InvokeComplete", msgspec.json.encode(complete), "application/json")
