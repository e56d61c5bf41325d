"""Event source mappings: a function reading an SQS queue, a DynamoDB stream or a Kinesis
stream, as Lambda's CreateEventSourceMapping defines one ("Using Lambda with Amazon SQS",
"... with DynamoDB", "... with Kinesis Data Streams" in AWS's guide).

``Mappings`` keeps them (the API's in the state directory's
``event-source-mappings.json``; a template's are made anew at each start, under the same
UUID) and runs a poller for each enabled one: ``sqs.Poller`` for a queue,
``streams.StreamPoller`` for a stream, each only where the server reads that service.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import InvalidParameterValueException, ResourceNotFoundException
from ..jsonfile import load_json, save_json

MAX_WINDOW_S = 300
SQS, DYNAMODB, KINESIS = "sqs", "dynamodb", "kinesis"  # the kinds of event source
_SOURCE_ARNS = {
    SQS: re.compile(r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[\w-]+$"),
    DYNAMODB: re.compile(r"^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[\w.-]+/stream/\S+$"),
    KINESIS: re.compile(r"^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[\w.-]+$"),
}
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
_ON_FAILURE = re.compile(r"^arn:aws[a-z-]*:(sqs|sns):[a-z0-9-]+:\d{12}:[\w-]+$")
_SERVICES = {SQS: "SQS", DYNAMODB: "DynamoDB", KINESIS: "Kinesis"}


class Mapping(msgspec.Struct):
    uuid: str
    function: str
    # EventSourceArn (named queue_arn in state files written when only queues were mapped)
    source_arn: str = msgspec.field(name="queue_arn")
    batch_size: int = 10
    window_s: int = 0  # MaximumBatchingWindowInSeconds
    report_failures: bool = False  # FunctionResponseTypes: [ReportBatchItemFailures]
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency (queues)
    enabled: bool = True
    last_modified: float = 0.0
    last_result: str = "No records processed"
    source: str = ""  # "Function.Event" of a template's; "" for one made over the API
    # Streams only: where reading starts, and what a failing batch is retried with.
    starting_position: str | None = None  # TRIM_HORIZON, LATEST or AT_TIMESTAMP (Kinesis)
    starting_timestamp: float | None = None  # AT_TIMESTAMP's, epoch seconds
    bisect: bool = False  # BisectBatchOnFunctionError
    max_retries: int = -1  # MaximumRetryAttempts (-1: until the records expire)
    max_record_age_s: int = -1  # MaximumRecordAgeInSeconds (-1: never too old)
    parallelization: int = 1  # ParallelizationFactor: batches of a shard at once
    on_failure: str | None = None  # DestinationConfig.OnFailure: where a dropped batch goes

    @property
    def kind(self) -> str:
        return source_kind(self.source_arn)

    @property
    def source_name(self) -> str:
        """The queue's, table's or stream's name."""
        resource = self.source_arn.split(":", 5)[5]
        return resource.split("/")[1] if "/" in resource else resource


def source_kind(arn: str) -> str:
    """``sqs``, ``dynamodb`` or ``kinesis``: what ``arn`` is the source of, or
    InvalidParameterValueException."""
    for kind, pattern in _SOURCE_ARNS.items():
        if pattern.match(arn):
            return kind
    raise InvalidParameterValueException(
        f"Unsupported event source {arn!r}: fastinvoke maps SQS queues "
        "(arn:aws:sqs:REGION:ACCOUNT:NAME), DynamoDB streams "
        "(arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL) and Kinesis streams "
        "(arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)")


def check(mapping: Mapping) -> Mapping:
    """``mapping`` if Lambda would accept it, else InvalidParameterValueException."""
    kind = mapping.kind
    if kind != SQS:
        _check_stream(mapping, kind)
    if not 1 <= mapping.batch_size <= 10_000:
        raise InvalidParameterValueException(
            f"BatchSize {mapping.batch_size} is not between 1 and 10000")
    if not 0 <= mapping.window_s <= MAX_WINDOW_S:
        raise InvalidParameterValueException(
            f"MaximumBatchingWindowInSeconds {mapping.window_s} is not between 0 and 300")
    if kind == SQS and mapping.batch_size > 10 and mapping.window_s < 1:
        raise InvalidParameterValueException(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is "
            "greater than 10")
    if mapping.max_concurrency is not None and not 2 <= mapping.max_concurrency <= 1000:
        raise InvalidParameterValueException(
            f"ScalingConfig MaximumConcurrency {mapping.max_concurrency} is not between 2 and "
            "1000")
    return mapping


def _check_stream(mapping: Mapping, kind: str) -> None:
    if mapping.starting_position not in STARTING_POSITIONS:
        raise InvalidParameterValueException(
            "StartingPosition is required for a stream event source: TRIM_HORIZON (the oldest "
            "record), LATEST (records from now on)" + (" or AT_TIMESTAMP" if kind == KINESIS
                                                       else ""))
    if mapping.starting_position == "AT_TIMESTAMP" and (
            kind != KINESIS or mapping.starting_timestamp is None):
        raise InvalidParameterValueException(
            "StartingPosition AT_TIMESTAMP is for Kinesis streams, with a "
            "StartingPositionTimestamp")
    if mapping.max_concurrency is not None:
        raise InvalidParameterValueException(
            "ScalingConfig is for SQS event sources; use ParallelizationFactor for a stream")
    if not (mapping.max_retries == -1 or 0 <= mapping.max_retries <= 10_000):
        raise InvalidParameterValueException(
            f"MaximumRetryAttempts {mapping.max_retries} is not -1 (until the records expire) "
            "or between 0 and 10000")
    if not (mapping.max_record_age_s == -1 or 60 <= mapping.max_record_age_s <= 604_800):
        raise InvalidParameterValueException(
            f"MaximumRecordAgeInSeconds {mapping.max_record_age_s} is not -1 (no limit) or "
            "between 60 and 604800")
    if mapping.on_failure is not None and not _ON_FAILURE.match(mapping.on_failure):
        raise InvalidParameterValueException(
            f"DestinationConfig OnFailure {mapping.on_failure!r}: a stream mapping's on-failure "
            "destination is an SQS queue or SNS topic ARN")
    if not 1 <= mapping.parallelization <= 10:
        raise InvalidParameterValueException(
            f"ParallelizationFactor {mapping.parallelization} is not between 1 and 10")


def template_uuid(source: str, function: str) -> str:
    """A template mapping's UUID: the same at every start."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fastinvoke:{function}:{source}"))


class Mappings:
    """The mappings, and their pollers (``start_poller(mapping)`` returns a stop
    function).  Any thread."""

    def __init__(self, state_dir: str,
                 pollers: dict[str, Callable[[Mapping], Callable[[], None]]]) -> None:
        """``pollers``: by kind of source (``sqs``...), what starts a mapping's poller
        (and returns its stop); a kind without one is not read by this server."""
        self._path = os.path.join(state_dir, "event-source-mappings.json")
        self._pollers = pollers
        self._lock = threading.Lock()
        self._stops: dict[str, Callable[[], None]] = {}
        self._mappings = {mapping.uuid: mapping
                          for mapping in load_json(self._path, list[Mapping], [])}

    def start(self, from_template: list[Mapping]) -> None:
        """Add a template's mappings (replacing earlier starts'), then poll every enabled
        one."""
        with self._lock:
            for mapping in list(self._mappings.values()):
                if mapping.source:
                    del self._mappings[mapping.uuid]
            for mapping in from_template:
                self._mappings[mapping.uuid] = mapping
            for mapping in self._mappings.values():
                self._run(mapping)

    def create(self, mapping: Mapping) -> Mapping:
        kind = check(mapping).kind
        if kind not in self._pollers:
            raise InvalidParameterValueException(
                f"This fastinvoke server reads no {_SERVICES[kind]} endpoint: start it with "
                f"--{kind}-endpoint URL (AWS's, or a compatible server's) to map "
                f"{_SERVICES[kind]} sources")
        with self._lock:
            mapping.last_modified = time.time()
            self._mappings[mapping.uuid] = mapping
            self._save()
            self._run(mapping)
        return mapping

    def get(self, mapping_uuid: str) -> Mapping:
        mapping = self._mappings.get(mapping_uuid)
        if mapping is None:
            raise ResourceNotFoundException(
                f"The resource you requested does not exist. (Service: Lambda, Status Code: "
                f"404, Request ID: {mapping_uuid})")
        return mapping

    def record(self, mapping_uuid: str, result: str) -> None:
        """A poller's last processing result (no lock: one attribute)."""
        mapping = self._mappings.get(mapping_uuid)
        if mapping is not None:
            mapping.last_result = result

    def all(self, function: str | None = None, source_arn: str | None = None) -> list[Mapping]:
        return [mapping for mapping in self._mappings.values()
                if function in (None, mapping.function)
                and source_arn in (None, mapping.source_arn)]

    def update(self, mapping_uuid: str, changes: dict[str, Any]) -> Mapping:
        with self._lock:
            mapping = check(msgspec.structs.replace(self.get(mapping_uuid), **changes,
                                                    last_modified=time.time()))
            self._stop(mapping_uuid)
            self._mappings[mapping_uuid] = mapping
            self._save()
            self._run(mapping)
        return mapping

    def delete(self, mapping_uuid: str) -> Mapping:
        with self._lock:
            mapping = self.get(mapping_uuid)
            self._stop(mapping_uuid)
            del self._mappings[mapping_uuid]
            self._save()
        return mapping

    def stop(self) -> None:
        with self._lock:
            for mapping_uuid in list(self._stops):
                self._stop(mapping_uuid)

    def _run(self, mapping: Mapping) -> None:
        start = self._pollers.get(mapping.kind)
        if mapping.enabled and start is not None and mapping.uuid not in self._stops:
            self._stops[mapping.uuid] = start(mapping)

    def _stop(self, mapping_uuid: str) -> None:
        stop = self._stops.pop(mapping_uuid, None)
        if stop is not None:
            stop()

    def _save(self) -> None:
        save_json(self._path, [mapping for mapping in self._mappings.values()
                               if not mapping.source])
