"""``fastinvoke event TYPE``: realistic events to invoke a function with by hand, as
``sam local generate-event`` prints them.  API Gateway's and function URLs' are built by
the code that builds them for real requests."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from ..apigw.events import build_event
from ..apigw.function_urls import url_event
from ..apigw.routes import DEFAULT_ROUTE, HTTP, REST, Api, Route
from ..config import ACCOUNT_ID
from ..http.messages import Request
from ..requests import new_request_id
from .shapes import s3_put_event, sample_sqs_message, scheduled_event, sqs_record

TYPES = ("apigateway", "http-api", "function-url", "sqs", "s3-put", "schedule")


def sample(kind: str, *, method: str = "GET", path: str = "/hello", body: str = "",
           queue: str = "my-queue", count: int = 1, bucket: str = "my-bucket",
           key: str = "example.txt", rule: str = "my-schedule",
           region: str = "us-east-1") -> dict[str, Any]:
    """The sample event of ``kind`` (one of ``TYPES``)."""
    if kind in ("apigateway", "http-api", "function-url"):
        return _http(kind, method, path, body, region)
    if kind == "sqs":
        arn = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{queue}"
        return {"Records": [sqs_record(arn, sample_sqs_message(body or "Hello from SQS!", n))
                            for n in range(count)]}
    if kind == "s3-put":
        return s3_put_event(bucket, key, len(body), region)
    if kind == "schedule":
        return scheduled_event(f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{rule}", time.time())
    raise ValueError(f"unknown event type {kind}: one of {', '.join(TYPES)}")


def _http(kind: str, method: str, path: str, body: str, region: str) -> dict[str, Any]:
    target = urlsplit(path)
    headers = [("Host", "localhost:3000"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")]
    if body:
        headers.append(("Content-Type", "application/json"))
    request = Request(method.upper(), target.path or "/", target.query,
                      {name.lower(): value for name, value in headers}, body.encode(), True,
                      headers, "127.0.0.1")
    if kind == "function-url":
        return url_event("a" * 32, region, request, new_request_id())
    if kind == "apigateway":
        route = Route(Api("ServerlessRestApi", REST, "Prod"), method.upper(), target.path or "/",
                      "function", "1.0", "sample")
    else:
        route = Route(Api("ServerlessHttpApi", HTTP, "$default"), "ANY", DEFAULT_ROUTE,
                      "function", "2.0", "sample")
    return build_event(route, request, {}, new_request_id())
