"""S3 event notifications as Lambda receives them: the record's shape ("Event message
structure" in Amazon S3's user guide), which subscriptions a change matches (event types
with S3's ``*`` wildcard, the key's prefix and suffix rules: "Configuring event
notifications using object key name filtering"), and their delivery as Event invocations,
one record per invocation ("Using AWS Lambda with Amazon S3").

The changes come from a store's webhook (``s3webhook``) or from polling a bucket's
listing (``s3poll``); both end in ``Notifier.deliver``.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote_plus

import msgspec

from ..errors import ServiceError

# The event types S3 can notify ("Supported event types for SQS, SNS, and Lambda").
EVENT_TYPES = frozenset(f"s3:{name}" for name in (
    "ObjectCreated:*", "ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload", "ObjectRemoved:*", "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated", "ObjectRestore:*", "ObjectRestore:Post",
    "ObjectRestore:Completed", "ObjectRestore:Delete", "ReducedRedundancyLostObject",
    "Replication:*", "Replication:OperationFailedReplication",
    "Replication:OperationMissedThreshold", "Replication:OperationReplicatedAfterThreshold",
    "Replication:OperationNotTracked", "LifecycleExpiration:*", "LifecycleExpiration:Delete",
    "LifecycleExpiration:DeleteMarkerCreated", "LifecycleTransition", "IntelligentTiering",
    "ObjectTagging:*", "ObjectTagging:Put", "ObjectTagging:Delete", "ObjectAcl:Put"))
LOCAL_PRINCIPAL = "A1FASTINVOKELOCAL"  # who made a change a listing shows: not known


def event_matches(pattern: str, event_name: str) -> bool:
    """Whether a subscription's event type (``s3:ObjectCreated:*``) covers a record's
    ``eventName`` (``ObjectCreated:Put``): S3's ``*`` stands for the rest of the name."""
    name = f"s3:{event_name}"
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def encode_key(key: str) -> str:
    """The object key as records carry it: URL-encoded, a space as ``+`` (S3 leaves the
    ``/`` of a key's "folders" as it is)."""
    return quote_plus(key, safe="/")


@dataclass(frozen=True)
class Subscription:
    """A function notified of a bucket's changes: a template's ``S3`` event
    (``source`` ``Function.Event``) or a bucket's ``LambdaConfigurations`` entry."""

    source: str
    function: str
    bucket: str
    events: tuple[str, ...]  # s3:ObjectCreated:*, s3:ObjectRemoved:Delete...
    prefix: str = ""
    suffix: str = ""

    @property
    def configuration_id(self) -> str:
        """The record's ``configurationId``.  S3 names a configuration that has no Id with
        a base64 text of its own; this one is the same at every start."""
        name = uuid.uuid5(uuid.NAMESPACE_URL, f"fastinvoke:s3:{self.source}:{self.function}")
        return base64.b64encode(str(name).encode()).decode().rstrip("=")

    def matches(self, change: Change) -> bool:
        return (change.bucket == self.bucket and change.key.startswith(self.prefix)
                and change.key.endswith(self.suffix)
                and any(event_matches(pattern, change.event_name) for pattern in self.events))

    def describe(self) -> str:
        rules = "".join(f", {name} {value!r}" for name, value in
                        (("prefix", self.prefix), ("suffix", self.suffix)) if value)
        return f"{self.source}: bucket {self.bucket} ({', '.join(self.events)}{rules}) -> " \
               f"{self.function}"


_last_sequencer = 0
_sequencer_lock = threading.Lock()


def new_sequencer() -> str:
    """A ``sequencer`` greater than every one this process gave before, even if the clock
    steps back (S3's are hexadecimal text that sorts in the order of a key's changes)."""
    global _last_sequencer
    with _sequencer_lock:
        _last_sequencer = max(time.time_ns(), _last_sequencer + 1)
        return f"{_last_sequencer:018X}"


def event_time(seconds: float) -> str:
    """``2026-12-06T09:47:29.123Z``: ISO 8601 in UTC, with milliseconds."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds * 1000) % 1000:03d}Z"


@dataclass(frozen=True)
class Change:
    """One change of one object: what a record says, whoever saw it.  ``key`` is the
    key itself (not URL-encoded); ``size`` and ``etag`` are None for a removal, as S3
    leaves them out of those records."""

    event_name: str  # ObjectCreated:Put, ObjectRemoved:Delete...
    bucket: str
    key: str
    region: str
    at: str  # eventTime: event_time(seconds)
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str = field(default_factory=new_sequencer)
    principal: str = LOCAL_PRINCIPAL
    source_ip: str = "127.0.0.1"
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16].upper())
    host_id: str = field(default_factory=lambda: base64.b64encode(uuid.uuid4().bytes * 3)
                         .decode())
    owner: str = LOCAL_PRINCIPAL  # the bucket owner's principal id

    def record(self, configuration_id: str) -> dict[str, Any]:
        """The notification record, as Lambda receives it in ``Records``."""
        obj: dict[str, Any] = {"key": encode_key(self.key)}
        if self.size is not None:
            obj["size"] = self.size
        if self.etag is not None:
            obj["eTag"] = self.etag
        if self.version_id is not None:
            obj["versionId"] = self.version_id
        obj["sequencer"] = self.sequencer
        return {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": self.region,
            "eventTime": self.at,
            "eventName": self.event_name,
            "userIdentity": {"principalId": self.principal},
            "requestParameters": {"sourceIPAddress": self.source_ip},
            "responseElements": {"x-amz-request-id": self.request_id,
                                 "x-amz-id-2": self.host_id},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": configuration_id,
                "bucket": {"name": self.bucket, "ownerIdentity": {"principalId": self.owner},
                           "arn": f"arn:aws:s3:::{self.bucket}"},
                "object": obj,
            },
        }


class Invoke(Protocol):
    def __call__(self, function_name: str, event: bytes, *, invocation_type: str) -> object: ...


class Notifier:
    """Delivers changes to the subscriptions they match, each as one Event invocation
    (the Event queue then retries as Lambda does).  ``polled``: the buckets a poller
    watches, whose webhook deliveries would arrive twice.  Any thread."""

    def __init__(self, subscriptions: list[Subscription], invoke: Invoke,
                 polled: Iterable[str] = ()) -> None:
        self.subscriptions = subscriptions
        self.polled = frozenset(polled)
        self._invoke = invoke

    def deliver(self, changes: Iterable[Change]) -> int:
        """Invoke every subscription each change matches; how many invocations were
        queued.  One that cannot be (its function is gone) is said and skipped, as S3
        drops a notification Lambda refuses."""
        queued = 0
        for change in changes:
            for subscription in self.subscriptions:
                if not subscription.matches(change):
                    continue
                event = msgspec.json.encode(
                    {"Records": [change.record(subscription.configuration_id)]})
                try:
                    self._invoke(subscription.function, event, invocation_type="Event")
                except ServiceError as error:
                    print(f"fastinvoke: S3 event {subscription.source} could not invoke "
                          f"{subscription.function}: {error}", file=sys.stderr, flush=True)
                    continue
                queued += 1
        return queued
