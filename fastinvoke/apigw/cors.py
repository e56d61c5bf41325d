"""CORS as API Gateway and Function URLs answer it: preflight requests answered without
calling the function, and the headers an allowed origin gets on a response."""

from __future__ import annotations

from ..http.messages import Request, Response
from .routes import Cors


def is_preflight(request: Request) -> bool:
    return request.method == "OPTIONS" and "origin" in request.headers \
        and "access-control-request-method" in request.headers


def preflight(cors: Cors, request: Request, status: int, check_origin: bool) -> Response:
    """The answer to a preflight request (``check_origin``: an origin the configuration
    does not allow gets no CORS headers, as an HTTP API or a function URL answers; a
    REST API's mock answer does not look)."""
    origin = request.headers["origin"]
    if check_origin and not allowed(cors, origin):
        return Response(status)
    headers = cors_headers(cors, origin)
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


def allowed(cors: Cors, origin: str) -> bool:
    return "*" in cors.allow_origins or origin in cors.allow_origins


def cors_headers(cors: Cors, origin: str) -> list[tuple[str, str]]:
    """The headers answering ``origin`` (none for an origin the configuration does not
    allow)."""
    if not allowed(cors, origin):
        return []
    allowed_origin = origin if cors.allow_credentials or "*" not in cors.allow_origins else "*"
    headers = [("Access-Control-Allow-Origin", allowed_origin)]
    if cors.allow_credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    if cors.expose_headers:
        headers.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    return headers
