"""What an S3-compatible store's webhook posts, read as changes: MinIO's
``{"EventName": "s3:ObjectCreated:Put", "Key": "bucket/key", "Records": [...]}``, a plain
``{"Records": [...]}``, or either inside an SNS HTTP(S) notification (S3 → SNS → a URL:
"HTTP/S notification JSON format" in SNS's guide).  Records are checked against S3's
"Event message structure": anything else is refused with the reason, and nothing of that
body is delivered.

The record each function gets is S3's own shape (``s3.Change.record``), whatever the
store added or left out: MinIO's ``s3:`` prefix on ``eventName`` and its ``%2F`` in keys,
a missing ``sequencer`` or ``userIdentity``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import unquote_plus

import msgspec

from .s3 import LOCAL_PRINCIPAL, Change, event_time, new_sequencer

_Text = Annotated[str, msgspec.Meta(min_length=1)]


class NotS3Event(ValueError):
    """A body that is not S3 event records: says what is wrong."""


class _Principal(msgspec.Struct):
    principalId: str = LOCAL_PRINCIPAL  # noqa: N815 - S3's member names


class _Bucket(msgspec.Struct):
    name: _Text
    ownerIdentity: _Principal | None = None  # noqa: N815


class _Object(msgspec.Struct):
    key: _Text
    size: int | None = None
    eTag: str | None = None  # noqa: N815
    versionId: str | None = None  # noqa: N815
    sequencer: str | None = None


class _S3(msgspec.Struct):
    bucket: _Bucket
    object: _Object


class _Record(msgspec.Struct):
    eventName: _Text  # noqa: N815
    s3: _S3
    eventSource: str = "aws:s3"  # noqa: N815
    awsRegion: str = ""  # noqa: N815
    eventTime: str | None = None  # noqa: N815
    userIdentity: _Principal | None = None  # noqa: N815
    requestParameters: dict[str, Any] | None = None  # noqa: N815
    responseElements: dict[str, Any] | None = None  # noqa: N815


class _Body(msgspec.Struct):
    Records: Annotated[list[_Record], msgspec.Meta(min_length=1)]  # noqa: N815


@dataclass
class Delivery:
    """A webhook body read: its changes, or the URL an SNS subscription is confirmed at."""

    changes: list[Change] = field(default_factory=list)
    subscribe_url: str | None = None


def read_body(body: bytes, region: str) -> Delivery:
    """The changes a webhook body holds (``region`` where a record names none), or
    NotS3Event saying why it holds none."""
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise NotS3Event(f"the body is not JSON ({error})") from None
    if isinstance(document, dict) and isinstance(document.get("Type"), str) \
            and "Records" not in document:
        return _sns(document, region)
    return Delivery([_change(record, region) for record in _records(document)])


def _records(document: Any) -> list[_Record]:
    try:
        return msgspec.convert(document, _Body).Records
    except msgspec.ValidationError as error:
        raise NotS3Event(f"not S3 event records: {error} (S3 posts "
                         '{"Records": [{"eventName": ..., "s3": {"bucket": {"name": ...}, '
                         '"object": {"key": ...}}}]})') from None


def _sns(envelope: dict[str, Any], region: str) -> Delivery:
    """An SNS HTTP(S) message: a subscription to confirm, or a notification whose
    ``Message`` is S3's records (or S3's ``s3:TestEvent``, which holds none)."""
    kind = envelope["Type"]
    if kind == "SubscriptionConfirmation" and isinstance(envelope.get("SubscribeURL"), str):
        return Delivery(subscribe_url=envelope["SubscribeURL"])
    if kind != "Notification" or not isinstance(envelope.get("Message"), str):
        raise NotS3Event(f"an SNS message of Type {kind!r} holds no S3 event records")
    try:
        message = msgspec.json.decode(envelope["Message"])
    except msgspec.DecodeError as error:
        raise NotS3Event(f"the SNS notification's Message is not JSON ({error})") from None
    if isinstance(message, dict) and message.get("Event") == "s3:TestEvent":
        return Delivery()
    return Delivery([_change(record, region) for record in _records(message)])


def _change(record: _Record, region: str) -> Change:
    if not record.eventSource.endswith(":s3"):
        raise NotS3Event(f"eventSource {record.eventSource!r} is not S3's (aws:s3)")
    obj, bucket = record.s3.object, record.s3.bucket
    elements = {name: value for name, value in (record.responseElements or {}).items()
                if name in ("x-amz-request-id", "x-amz-id-2") and isinstance(value, str)}
    source_ip = (record.requestParameters or {}).get("sourceIPAddress")
    optional: dict[str, Any] = {}
    if "x-amz-request-id" in elements:
        optional["request_id"] = elements["x-amz-request-id"]
    if "x-amz-id-2" in elements:
        optional["host_id"] = elements["x-amz-id-2"]
    if isinstance(source_ip, str) and source_ip:
        optional["source_ip"] = source_ip
    name = record.eventName.removeprefix("s3:")
    removed = name.startswith("ObjectRemoved:")  # S3 gives no size nor eTag for those
    return Change(
        name, bucket.name, unquote_plus(obj.key), record.awsRegion or region,
        record.eventTime or event_time(time.time()), None if removed else obj.size,
        None if removed or obj.eTag is None else obj.eTag.strip('"'), obj.versionId or None,
        obj.sequencer or new_sequencer(),
        (record.userIdentity or _Principal()).principalId,
        owner=(bucket.ownerIdentity or _Principal()).principalId, **optional)


