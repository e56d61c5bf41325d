"""The API port of ``fastinvoke serve``: a template's API routes, answered as API Gateway
answers them, by the same warm pools the Lambda API invokes.

A request finds its route (``routes``), becomes the route's event (``events``), runs as a
synchronous invocation, and its result becomes the response (``responses``).  CORS
preflight requests are answered here for an API with a CORS configuration (as API
Gateway does, without calling a function), and an HTTP API adds its CORS headers to the
function's responses.  Every error API Gateway answers itself is logged on stderr with
the route and function, so that a 502 says why in the server's output.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from ..errors import RequestEntityTooLargeException, ServiceError, TooManyRequestsException
from ..http.messages import Request, Response
from ..invoker import Invoker
from ..requests import new_request_id
from .cors import cors_headers, is_preflight, preflight
from .events import build_event
from .responses import (
    INTERNAL,
    THROTTLED,
    TIMED_OUT,
    TOO_LARGE,
    Malformed,
    function_response,
    gateway_error,
    not_found,
)
from .routes import HTTP, RouteTable

API_BODY_LIMIT = 10 * 1024 * 1024  # API Gateway's payload limit
_TIMED_OUT = "Sandbox.Timedout"


class Gateway:
    """The HTTP application of the API port."""

    def __init__(self, invoker: Invoker, table: RouteTable) -> None:
        self.invoker = invoker
        self.table = table
        self._kinds = {route.api.kind for route in table.routes}

    async def __call__(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if is_preflight(request):
            route = self.table.preflight(request.path)
            if route is not None and route.api.cors is not None:
                http = route.api.kind == HTTP
                return preflight(route.api.cors, request, 204 if http else 200, http)
        found = self.table.match(request.method, request.path)
        if found is None:
            return not_found(self._kinds)
        route, parameters = found
        request_id = new_request_id()
        event = build_event(route, request, parameters, request_id)
        response = await answer(self.invoker, route.function, event, route.payload_version,
                                f"{request.method} {request.path} -> {route.function} "
                                f"({route.source})")
        if route.api.kind == HTTP:
            response.headers.append(("Apigw-Requestid", request_id))
            if route.api.cors is not None and origin is not None:
                response.headers += cors_headers(route.api.cors, origin)
        else:
            response.headers.append(("x-amzn-RequestId", request_id))
        return response


async def answer(invoker: Invoker, function: str, event: dict[str, Any], payload_version: str,
                 where: str) -> Response:
    """Invoke ``function`` with ``event`` and answer as API Gateway does; ``where`` (the
    request and its route) heads the log line of a failure."""
    try:
        result = await invoker.ainvoke(function, event)
    except ServiceError as error:
        return refused(error, where)
    if result.function_error is not None:
        return failed(result.payload, where)
    try:
        return function_response(payload_version, result)
    except Malformed as why:
        log(where, f"malformed Lambda proxy response: {why}")
        return gateway_error(*INTERNAL)


def refused(error: ServiceError, where: str) -> Response:
    """What API Gateway answers when Lambda refused the invocation."""
    if isinstance(error, TooManyRequestsException):
        return gateway_error(*THROTTLED)
    if isinstance(error, RequestEntityTooLargeException):
        return gateway_error(*TOO_LARGE)
    log(where, f"{error.code}: {error.message}")
    return gateway_error(*INTERNAL)


def failed(document: bytes, where: str) -> Response:
    """What API Gateway answers for a function error (its error ``document``)."""
    error_type = _error_type(document)
    log(where, f"the function failed ({error_type})")
    return gateway_error(*(TIMED_OUT if error_type == _TIMED_OUT else INTERNAL))


def log(where: str, problem: str) -> None:
    print(f"fastinvoke api: {where}: {problem}", file=sys.stderr, flush=True)


def gateway_error_page(error: ServiceError, close: bool) -> Response:
    """What the API port answers for a request its server refuses before any route."""
    if error.status == 413:
        return gateway_error(*TOO_LARGE, close=close)
    return gateway_error(error.status, error.message, close=close)


def _error_type(payload: bytes) -> str:
    try:
        document = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return "Unknown"
    return str(document.get("errorType", "Unknown")) if isinstance(document, dict) else "Unknown"

