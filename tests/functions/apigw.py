"""Handlers behind API Gateway routes (test_apigw)."""

import base64
import json


def echo(event, context):
    """The event it got, as a JSON body, with headers of both kinds."""
    return {"statusCode": 200, "headers": {"X-Echo": "yes"},
            "multiValueHeaders": {"X-Multi": ["a", "b"]}, "body": json.dumps(event)}


def plain(event, context):
    """A value without statusCode: an HTTP API (2.0) sends it as it is."""
    return {"hello": (event.get("pathParameters") or {}).get("name")}


def cookies(event, context):
    return {"statusCode": 201, "cookies": ["first=1", "second=2; Path=/"], "body": "made",
            "headers": {"Content-Type": "text/plain"}}


def binary(event, context):
    """Sends back the bytes of the request body (in base64 in the event) reversed."""
    data = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else b""
    return {"statusCode": 200, "isBase64Encoded": True,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(data[::-1]).decode()}


def malformed(event, context):
    return "not a proxy response"


def raises(event, context):
    raise ValueError("boom")
