"""The events other AWS services send a function, as Lambda delivers them ("Using AWS
Lambda with Amazon SQS", "... with Amazon EventBridge Scheduler", "... with Amazon S3"
in AWS's Lambda guide)."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from ..config import ACCOUNT_ID
from .s3 import Change, event_time


def iso_time(seconds: float) -> str:
    """``2015-10-08T16:53:06Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def sqs_record(queue_arn: str, message: dict[str, Any]) -> dict[str, Any]:
    """One record of an SQS batch, from a message as ReceiveMessage returns it (with
    ``AttributeNames=["All"]`` and ``MessageAttributeNames=["All"]``)."""
    region = queue_arn.split(":")[3]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """ReceiveMessage's ``StringValue``... as Lambda's ``stringValue``..."""
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": value.get("BinaryValue"),
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": value.get("BinaryListValues", []),
        "dataType": value.get("DataType"),
    }


def sample_sqs_message(body: str, number: int) -> dict[str, Any]:
    """A message as ReceiveMessage would return it (for sample events)."""
    now_ms = str(int(time.time() * 1000))
    return {
        "MessageId": str(uuid.uuid4()),
        "ReceiptHandle": f"sample-receipt-handle-{number}",
        "Body": body,
        "MD5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": now_ms,
                       "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                       "ApproximateFirstReceiveTimestamp": now_ms},
    }


def scheduled_event(rule_arn: str, fired_at: float) -> dict[str, Any]:
    """What an EventBridge schedule sends."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": iso_time(fired_at),
        "region": rule_arn.split(":")[3],
        "resources": [rule_arn],
        "detail": {},
    }


def s3_put_event(bucket: str, key: str, size: int, region: str) -> dict[str, Any]:
    """An S3 ``ObjectCreated:Put`` notification with one record."""
    change = Change("ObjectCreated:Put", bucket, key, region, event_time(time.time()), size,
                    hashlib.md5(key.encode(), usedforsecurity=False).hexdigest())
    return {"Records": [change.record("testConfigRule")]}
