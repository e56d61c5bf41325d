"""What an invocation's input must be before it is accepted, as Lambda checks it: the
invocation type, the event (JSON, within the type's payload limit) and the client
context (base64 of a JSON object)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from .errors import (
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    ValidationException,
)
from .limits import ASYNC_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT

INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
validate_json = msgspec.json.decode
_encode_json = msgspec.json.encode


def check_invocation_type(invocation_type: str) -> None:
    if invocation_type not in INVOCATION_TYPES:
        raise ValidationException(
            f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
            "failed to satisfy constraint: Member must satisfy enum value set: "
            "[Event, RequestResponse, DryRun]"
        )


def check_log_type(log_type: str | None) -> None:
    """Invoke's ``X-Amz-Log-Type``: absent, ``None`` or ``Tail``."""
    if log_type not in (None, "None", "Tail"):
        raise ValidationException(
            f"1 validation error detected: Value '{log_type}' at 'logType' failed to "
            "satisfy constraint: Member must satisfy enum value set: [Tail, None]")


def payload_limit(invocation_type: str) -> int:
    """Lambda's payload limit for the invocation type."""
    return ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT


def event_bytes(event: Any, invocation_type: str) -> bytes:
    """The event as JSON bytes, validated once here; the worker decodes it."""
    if isinstance(event, (bytes, bytearray, memoryview)):
        body = bytes(event)
        if not body:
            body = b"{}"  # Lambda runs an empty payload as {}
        else:
            try:
                validate_json(body)
            except msgspec.DecodeError as exc:
                raise InvalidRequestContentException(
                    f"Could not parse request body into json: Could not parse payload into "
                    f"json: {exc}") from None
    elif event is None:
        body = b"{}"
    else:
        try:
            body = _encode_json(event)
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidRequestContentException(
                f"Could not parse request body into json: {exc}") from None
    limit = payload_limit(invocation_type)
    if len(body) > limit:
        raise RequestEntityTooLargeException(
            f"{len(body)} byte payload is too large for the {invocation_type} invocation type "
            f"(limit {limit} bytes)")
    return body


def client_context(value: dict[str, Any] | str | None) -> str | None:
    """The client context as the JSON text the function's context gets."""
    if value is None:
        return None
    if isinstance(value, dict):
        return _encode_json(value).decode()
    try:
        text = base64.b64decode(value, validate=True).decode()
        validate_json(text)
    except (binascii.Error, UnicodeDecodeError, msgspec.DecodeError):
        raise InvalidRequestContentException(
            "Client context must be a valid Base64-encoded JSON object.") from None
    return text
