"""What API Gateway answers for a function's result, and its own error answers.

Payload 1.0 (REST APIs, and HTTP APIs that ask for it): the function must return
``statusCode`` (with ``headers``, ``multiValueHeaders``, ``body``, ``isBase64Encoded``),
anything else is a malformed response.  Payload 2.0: the same fields plus ``cookies``;
a result without ``statusCode`` is sent as it is, 200, ``application/json``.  A function
error, a malformed response, a timeout and a throttle get API Gateway's own answers.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from ..http.messages import Response
from ..result import InvokeResult
from .routes import HTTP

_decode = msgspec.json.decode
_JSON = ("Content-Type", "application/json")


class Malformed(Exception):
    """The function's result is not a response API Gateway can send: says why."""


def gateway_error(status: int, message: str, close: bool = False) -> Response:
    """An answer of API Gateway itself: ``{"message": ...}``."""
    return Response(status, msgspec.json.encode({"message": message}), [_JSON], close=close)


INTERNAL = 502, "Internal server error"
TIMED_OUT = 504, "Endpoint request timed out"
THROTTLED = 429, "Too Many Requests"
TOO_LARGE = 413, "Request Entity Too Large"


def not_found(route_kinds: set[str]) -> Response:
    """No route matched: an HTTP API's 404, or a REST API's 403 (API Gateway answers an
    unknown path of a REST API as an unsigned request)."""
    if HTTP in route_kinds or not route_kinds:
        return gateway_error(404, "Not Found")
    return gateway_error(403, "Missing Authentication Token")


def function_response(payload_version: str, result: InvokeResult) -> Response:
    """The HTTP response for the function's result (raises ``Malformed``)."""
    payload = result.payload
    if payload_version == "2.0" and b'"statusCode"' not in payload:
        return Response(200, payload, [_JSON])  # as it is: no statusCode to look for
    try:
        value = _decode(payload)
    except msgspec.DecodeError:
        raise Malformed("the result is not JSON") from None
    if payload_version == "2.0" and not (isinstance(value, dict) and "statusCode" in value):
        return Response(200, payload, [_JSON])
    if not isinstance(value, dict):
        raise Malformed("the result is not an object with a statusCode")
    return _structured(value, cookies=payload_version == "2.0")


def _structured(value: dict[str, Any], cookies: bool) -> Response:
    status = value.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise Malformed(f"statusCode {status!r} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    single = value.get("headers") or {}
    multi = value.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise Malformed("headers and multiValueHeaders must be objects")
    for name, values in multi.items():
        if not isinstance(values, list):
            raise Malformed(f"multiValueHeaders {name} is not a list")
        headers += [(str(name), _text(item)) for item in values]
    seen = {name.lower() for name, _ in headers}
    headers += [(str(name), _text(item)) for name, item in single.items()
                if str(name).lower() not in seen]
    if cookies:
        found = value.get("cookies") or []
        if not isinstance(found, list):
            raise Malformed("cookies is not a list")
        headers += [("Set-Cookie", _text(cookie)) for cookie in found]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(_JSON)
    body = value.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise Malformed("body is not a string")
    elif value.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise Malformed("body is not valid base64, but isBase64Encoded is true") from None
    else:
        data = body.encode()
    return Response(status, data, headers)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise Malformed(f"header value {value!r} is not a string")
