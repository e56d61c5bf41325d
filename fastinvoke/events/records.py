"""What an asynchronous invocation's destinations and dead-letter target receive, byte for
byte as Lambda sends it (docs/lambda-behaviour.md, "Asynchronous invocation"): compact JSON,
the event and the response spliced in as they are (never re-encoded)."""

from __future__ import annotations

import time
import uuid

import msgspec

from .config import Target
from .store import QueuedEvent

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"
ZERO_RESERVED_CONCURRENCY = "ZeroReservedConcurrency"
_ERROR_MESSAGE_BYTES = 1024  # a dead letter's ErrorMessage attribute keeps the first 1 KB
_encode = msgspec.json.encode
_decode = msgspec.json.decode


def iso_ms(epoch_ms: int) -> str:
    """``2025-11-24T23:11:08.417Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000)) \
        + f".{epoch_ms % 1000:03d}Z"


def destination_record(event: QueuedEvent, function_arn: str, version: str, condition: str,
                       now_ms: int) -> bytes:
    """The record an on-success or on-failure destination receives; ``function_arn`` is
    qualified with the ``version`` that ran."""
    record: dict[str, object] = {
        "version": "1.0",
        "timestamp": iso_ms(now_ms),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": event.attempts,
        },
        "requestPayload": msgspec.Raw(event.payload),
    }
    if event.attempts and event.last_payload is not None:  # an attempt ran: its response
        response: dict[str, object] = {"statusCode": 200, "executedVersion": version}
        if event.last_error is not None:
            response["functionError"] = "Unhandled"
        record["responseContext"] = response
        record["responsePayload"] = msgspec.Raw(event.last_payload or b"null")
    return _encode(record)


def wrap(target: Target, record: bytes, success: bool, function_arn: str, region: str,
         account_id: str, now_ms: int) -> bytes:
    """The record as the destination's service would deliver it."""
    if target.envelope == "sqs":
        return _encode({"MessageId": str(uuid.uuid4()), "Body": record.decode()})
    if target.envelope == "sns":
        return _encode({"Type": "Notification", "MessageId": str(uuid.uuid4()),
                        "TopicArn": target.arn, "Message": record.decode(),
                        "Timestamp": iso_ms(now_ms)})
    if target.envelope == "events":
        outcome = "Success" if success else "Failure"
        return _encode({
            "version": "0", "id": str(uuid.uuid4()),
            "detail-type": f"Lambda Function Invocation Result - {outcome}",
            "source": "lambda", "account": account_id, "time": iso_ms(now_ms)[:-5] + "Z",
            "region": region, "resources": [target.arn, function_arn],
            "detail": msgspec.Raw(record),
        })
    return record


def failure_message(event: QueuedEvent) -> str:
    """The first 1 KB of the last attempt's error message (a dead letter's attribute)."""
    message = ""
    if event.last_payload:
        try:
            document = _decode(event.last_payload)
        except msgspec.DecodeError:
            document = None
        if isinstance(document, dict):
            message = str(document.get("errorMessage", ""))
    return message.encode()[:_ERROR_MESSAGE_BYTES].decode(errors="ignore")


def sqs_attributes(event: QueuedEvent) -> dict[str, dict[str, str]]:
    """A dead letter's message attributes on SQS: the request id, the last attempt's
    status and its error message."""
    return {"RequestID": {"DataType": "String", "StringValue": event.request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": failure_message(event)}}


def dead_letter(target: Target, event: QueuedEvent, now_ms: int) -> bytes:
    """The dead-letter message: the original event unchanged, with the request id, the
    last attempt's status and the first 1 KB of its error message as attributes."""
    message = failure_message(event)
    body = event.payload.decode()
    if target.envelope == "sns":
        attributes = {"RequestID": {"Type": "String", "Value": event.request_id},
                      "ErrorCode": {"Type": "Number", "Value": "200"},
                      "ErrorMessage": {"Type": "String", "Value": message}}
        return _encode({"Type": "Notification", "MessageId": str(uuid.uuid4()),
                        "TopicArn": target.arn, "Message": body,
                        "Timestamp": iso_ms(now_ms), "MessageAttributes": attributes})
    return _encode({"MessageId": str(uuid.uuid4()), "Body": body,
                    "MessageAttributes": sqs_attributes(event)})
