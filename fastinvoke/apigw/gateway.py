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

import msgspec

from ..errors import RequestEntityTooLargeException, ServiceError, TooManyRequestsException
from ..http.messages import Request, Response
from ..invoker import Invoker
from ..requests import new_request_id
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
from .routes import HTTP, Cors, Route, RouteTable

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
        if request.method == "OPTIONS" and origin is not None \
                and "access-control-request-method" in request.headers:
            route = self.table.preflight(request.path)
            if route is not None:
                return _preflight(route, request, origin)
        found = self.table.match(request.method, request.path)
        if found is None:
            return not_found(self._kinds)
        route, parameters = found
        request_id = new_request_id()
        response = await self._invoke(route, request, parameters, request_id)
        if route.api.kind == HTTP:
            response.headers.append(("Apigw-Requestid", request_id))
            if route.api.cors is not None and origin is not None:
                response.headers += _cors_headers(route.api.cors, origin)
        else:
            response.headers.append(("x-amzn-RequestId", request_id))
        return response

    async def _invoke(self, route: Route, request: Request, parameters: dict[str, str],
                      request_id: str) -> Response:
        event = build_event(route, request, parameters, request_id)
        try:
            result = await self.invoker.ainvoke(route.function, event)
        except TooManyRequestsException:
            return gateway_error(*THROTTLED)
        except RequestEntityTooLargeException:
            return gateway_error(*TOO_LARGE)
        except ServiceError as error:
            _log(route, request, f"{error.code}: {error.message}")
            return gateway_error(*INTERNAL)
        if result.function_error is not None:
            error_type = _error_type(result.payload)
            _log(route, request, f"the function failed ({error_type})")
            return gateway_error(*(TIMED_OUT if error_type == _TIMED_OUT else INTERNAL))
        try:
            return function_response(route, result)
        except Malformed as why:
            _log(route, request, f"malformed Lambda proxy response: {why}")
            return gateway_error(*INTERNAL)


def gateway_error_page(error: ServiceError, close: bool) -> Response:
    """What the API port answers for a request its server refuses before any route."""
    if error.status == 413:
        return gateway_error(*TOO_LARGE, close=close)
    return gateway_error(error.status, error.message, close=close)


def _preflight(route: Route, request: Request, origin: str) -> Response:
    cors = route.api.cors
    assert cors is not None
    status = 204 if route.api.kind == HTTP else 200
    if route.api.kind == HTTP and not _allowed(cors, origin):
        return Response(status)
    headers = _cors_headers(cors, origin)
    requested = request.headers.get("access-control-request-headers")
    allow_headers = cors.allow_headers
    if "*" in allow_headers and requested:
        allow_headers = (requested,)
    methods = cors.allow_methods
    if "*" in methods:
        methods = (request.headers["access-control-request-method"],)
    headers.append(("Access-Control-Allow-Methods", ",".join(methods)))
    if allow_headers:
        headers.append(("Access-Control-Allow-Headers", ",".join(allow_headers)))
    if cors.max_age is not None:
        headers.append(("Access-Control-Max-Age", str(cors.max_age)))
    return Response(status, b"", headers)


def _allowed(cors: Cors, origin: str) -> bool:
    return "*" in cors.allow_origins or origin in cors.allow_origins


def _cors_headers(cors: Cors, origin: str) -> list[tuple[str, str]]:
    """The headers answering ``origin`` (none for an origin the API does not allow)."""
    if not _allowed(cors, origin):
        return []
    allowed = origin if cors.allow_credentials or "*" not in cors.allow_origins else "*"
    headers = [("Access-Control-Allow-Origin", allowed)]
    if cors.allow_credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    if cors.expose_headers:
        headers.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    return headers


def _error_type(payload: bytes) -> str:
    try:
        document = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return "Unknown"
    return str(document.get("errorType", "Unknown")) if isinstance(document, dict) else "Unknown"


def _log(route: Route, request: Request, problem: str) -> None:
    print(f"fastinvoke api: {request.method} {request.path} -> {route.function} "
          f"({route.source}): {problem}", file=sys.stderr, flush=True)
