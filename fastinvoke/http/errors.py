"""Errors only the HTTP front-end answers with, and how every service error is sent.

botocore recognises an error by ``x-amzn-ErrorType`` (the full exception name), the
status and a JSON body holding ``message`` or ``Message`` (docs/lambda-behaviour.md,
"Errors"), so every error, a 5xx included, goes out with all three.  As in
``fastinvoke/errors.py``, one class per error type: alike in shape, caught by name.
"""

from __future__ import annotations

import msgspec

from ..errors import ServiceError
from ..requests import new_request_id
from .messages import Response

_encode = msgspec.json.encode


class UnknownOperationException(ServiceError):
    """No Lambda operation has this path (404) or this method on it (405)."""

    status = 404


class NotImplementedException(ServiceError):
    """An operation of Lambda's API that fastinvoke does not implement."""

    status = 501


class RequestTimeoutException(ServiceError):
    """The client did not send a whole request in time."""

    status = 408


class RequestHeaderFieldsTooLargeException(ServiceError):
    """Too many headers, or too many bytes of them (RFC 6585 §5)."""

    status = 431


class MissingAuthenticationTokenException(ServiceError):
    status = 403


class IncompleteSignatureException(ServiceError):
    status = 403


class InvalidSignatureException(ServiceError):
    status = 403


class UnrecognizedClientException(ServiceError):
    status = 403


class ExpiredTokenException(ServiceError):
    status = 403


class AccessDeniedException(ServiceError):
    """IAM denied the signer's role the action on the resource."""

    status = 403
    message_key = "Message"


def error_response(error: ServiceError, request_id: str | None = None,
                   close: bool = False) -> Response:
    """``error`` as Lambda sends it: status, ``x-amzn-ErrorType`` and the JSON body."""
    return Response(error.status, _encode(error.to_body()), [
        ("Content-Type", "application/json"),
        ("x-amzn-RequestId", request_id or new_request_id()),
        ("x-amzn-ErrorType", error.code),
    ], close=close)
