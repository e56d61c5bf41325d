"""The events API Gateway gives a function for an HTTP request: payload format 1.0 (REST
APIs, and HTTP APIs that ask for it) and 2.0 (HTTP APIs), field for field as AWS's pages
"Set up Lambda proxy integrations in API Gateway" and "Create AWS Lambda proxy
integrations for HTTP APIs in API Gateway" describe them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from typing import Any
from urllib.parse import unquote

from ..config import ACCOUNT_ID
from ..http.messages import Request
from .routes import HTTP, Api, Route

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Media types an HTTP API passes as text; any other body reaches the function in base64.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "application/graphql")


@functools.cache
def api_id(logical_id: str) -> str:
    """A stable 10-character id for the API ``logical_id``, shaped as API Gateway's."""
    return hashlib.sha256(logical_id.encode()).hexdigest()[:10]


@functools.cache
def _resource_id(logical_id: str, resource: str) -> str:
    return hashlib.sha256(f"{logical_id} {resource}".encode()).hexdigest()[:6]


def build_event(route: Route, request: Request, path_parameters: dict[str, str],
                request_id: str) -> dict[str, Any]:
    """The event for ``request`` on ``route``, in the route's payload format."""
    now_ms = time.time_ns() // 1_000_000
    if route.payload_version == "2.0":
        return _v2(route, request, path_parameters, request_id, now_ms)
    return _v1(route, request, path_parameters, request_id, now_ms)


def _v1(route: Route, request: Request, path_parameters: dict[str, str], request_id: str,
        now_ms: int) -> dict[str, Any]:
    api = route.api
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    # A REST API keeps header names as sent; an HTTP API lower-cases them.
    raw = request.raw_headers if api.kind != HTTP else None
    for name, value in raw if raw is not None else request.headers.items():
        single[name] = value  # the last value of a repeated header
        multi.setdefault(name, []).append(value)
    query_single: dict[str, str] = {}
    query_multi: dict[str, list[str]] = {}
    for name, value in query_pairs(request.query):
        query_single[name] = value
        query_multi.setdefault(name, []).append(value)
    body, encoded = _body(request, _rest_binary(api, request) if api.kind != HTTP
                          else _http_binary(request))
    resource = route.path if route.path != "$default" else "/{proxy+}"
    context = _host(request)
    request_context = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id(api.id),
        "domainName": context[0],
        "domainPrefix": context[1],
        "extendedRequestId": request_id,
        "httpMethod": request.method,
        "identity": {
            "accessKey": None, "accountId": None, "caller": None,
            "cognitoAuthenticationProvider": None, "cognitoAuthenticationType": None,
            "cognitoIdentityId": None, "cognitoIdentityPoolId": None, "principalOrgId": None,
            "sourceIp": request.client, "user": None,
            "userAgent": request.headers.get("user-agent", ""), "userArn": None,
        },
        "path": _stage_path(api, request.path),
        "protocol": "HTTP/1.1",
        "requestId": request_id,
        "requestTime": _clf_time(now_ms),
        "requestTimeEpoch": now_ms,
        "resourceId": _resource_id(api.id, resource),
        "resourcePath": resource,
        "stage": api.stage,
    }  # fmt: skip
    event: dict[str, Any] = {"version": "1.0"} if api.kind == HTTP else {}
    event.update({
        "resource": resource,
        "path": unquote(request.path),
        "httpMethod": request.method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": query_single or None,
        "multiValueQueryStringParameters": query_multi or None,
        "requestContext": request_context,
        "pathParameters": path_parameters or None,
        "stageVariables": api.stage_variables or None,
        "body": body,
        "isBase64Encoded": encoded,
    })
    return event


def _v2(route: Route, request: Request, path_parameters: dict[str, str], request_id: str,
        now_ms: int) -> dict[str, Any]:
    api = route.api
    headers = {name: value for name, value in request.headers.items() if name != "cookie"}
    queries: dict[str, str] = {}
    for name, value in query_pairs(request.query):
        queries[name] = f"{queries[name]},{value}" if name in queries else value
    body, encoded = _body(request, _http_binary(request))
    domain, prefix = _host(request)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": request.path,
        "rawQueryString": request.query,
    }
    if "cookie" in request.headers:
        event["cookies"] = [cookie.strip() for cookie in request.headers["cookie"].split(";")
                            if cookie.strip()]
    event["headers"] = headers
    if queries:
        event["queryStringParameters"] = queries
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id(api.id),
        "domainName": domain,
        "domainPrefix": prefix,
        "http": {
            "method": request.method,
            "path": unquote(request.path),
            "protocol": "HTTP/1.1",
            "sourceIp": request.client,
            "userAgent": request.headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.key,
        "stage": api.stage,
        "time": _clf_time(now_ms),
        "timeEpoch": now_ms,
    }
    if body is not None:
        event["body"] = body
    if path_parameters:
        event["pathParameters"] = path_parameters
    event["isBase64Encoded"] = encoded
    if api.stage_variables:
        event["stageVariables"] = api.stage_variables
    return event


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The query string's name and value pairs, percent-decoded, in order (API Gateway
    keeps a ``+`` as it is)."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _body(request: Request, binary: bool) -> tuple[str | None, bool]:
    """The body as the event carries it, and whether that is base64 (``binary``, or a
    body that is not UTF-8 text)."""
    if not request.body:
        return None, False
    if not binary:
        try:
            return request.body.decode(), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode(), True


def _rest_binary(api: Api, request: Request) -> bool:
    """A REST API passes a body in base64 when its Content-Type is one of the API's
    binary media types (``*/*``: every type)."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    for media in map(str.lower, api.binary_media_types):
        major, _, minor = media.partition("/")
        if media in ("*/*", kind) or (minor == "*" and kind.startswith(major + "/")):
            return True
    return False


def _http_binary(request: Request) -> bool:
    """An HTTP API passes a body as text only when its type is text and it is not
    compressed."""
    kind = request.headers.get("content-type", "").lower()
    return "content-encoding" in request.headers or bool(kind) and not kind.startswith(_TEXT_TYPES)


def _host(request: Request) -> tuple[str, str]:
    host = request.headers.get("host") or "localhost"
    domain = host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # without the port
    return domain, domain.partition(".")[0]


def _stage_path(api: Api, path: str) -> str:
    path = unquote(path)
    return path if api.stage == "$default" else f"/{api.stage}{path}"


def _clf_time(now_ms: int) -> str:
    """``12/Mar/2020:19:03:58 +0000``, as API Gateway writes request times."""
    return _clf_second(now_ms // 1000)


@functools.lru_cache(maxsize=2)  # this second's, and the last one's
def _clf_second(second: int) -> str:
    t = time.gmtime(second)
    return (f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")
