"""Event source mappings: a function reading an SQS queue, as Lambda's
CreateEventSourceMapping defines one ("Using Lambda with Amazon SQS" in AWS's guide).

``Mappings`` keeps them (the API's in the state directory's
``event-source-mappings.json``; a template's are made anew at each start, under the same
UUID) and runs one ``sqs.Poller`` for each enabled one.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import InvalidParameterValueException, ResourceNotFoundException
from ..jsonfile import load_json, save_json

MAX_WINDOW_S = 300
_SQS_ARN = "arn:aws:sqs:"


class Mapping(msgspec.Struct):
    uuid: str
    function: str
    queue_arn: str
    batch_size: int = 10
    window_s: int = 0  # MaximumBatchingWindowInSeconds
    report_failures: bool = False  # FunctionResponseTypes: [ReportBatchItemFailures]
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency
    enabled: bool = True
    last_modified: float = 0.0
    last_result: str = "No records processed"
    source: str = ""  # "Function.Event" of a template's; "" for one made over the API

    @property
    def queue_name(self) -> str:
        return self.queue_arn.split(":")[5]


def check(mapping: Mapping) -> Mapping:
    """``mapping`` if Lambda would accept it, else InvalidParameterValueException."""
    if not mapping.queue_arn.startswith(_SQS_ARN) or len(mapping.queue_arn.split(":")) != 6:
        raise InvalidParameterValueException(
            f"Unsupported event source {mapping.queue_arn!r}: fastinvoke maps SQS queues "
            "(arn:aws:sqs:REGION:ACCOUNT:NAME)")
    if not 1 <= mapping.batch_size <= 10_000:
        raise InvalidParameterValueException(
            f"BatchSize {mapping.batch_size} is not between 1 and 10000")
    if not 0 <= mapping.window_s <= MAX_WINDOW_S:
        raise InvalidParameterValueException(
            f"MaximumBatchingWindowInSeconds {mapping.window_s} is not between 0 and 300")
    if mapping.batch_size > 10 and mapping.window_s < 1:
        raise InvalidParameterValueException(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is "
            "greater than 10")
    if mapping.max_concurrency is not None and not 2 <= mapping.max_concurrency <= 1000:
        raise InvalidParameterValueException(
            f"ScalingConfig MaximumConcurrency {mapping.max_concurrency} is not between 2 and "
            "1000")
    return mapping


def template_uuid(source: str, function: str) -> str:
    """A template mapping's UUID: the same at every start."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fastinvoke:{function}:{source}"))


class Mappings:
    """The mappings, and their pollers (``start_poller(mapping)`` returns a stop
    function).  Any thread."""

    def __init__(self, state_dir: str,
                 start_poller: Callable[[Mapping], Callable[[], None]] | None) -> None:
        self._path = os.path.join(state_dir, "event-source-mappings.json")
        self._start_poller = start_poller
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
        if self._start_poller is None:
            raise InvalidParameterValueException(
                "This fastinvoke server reads no SQS endpoint: start it with --sqs-endpoint URL "
                "(AWS's, or any SQS-compatible server's) to map queues")
        check(mapping)
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

    def all(self, function: str | None = None, queue_arn: str | None = None) -> list[Mapping]:
        return [mapping for mapping in self._mappings.values()
                if function in (None, mapping.function) and queue_arn in (None, mapping.queue_arn)]

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
        if mapping.enabled and self._start_poller is not None \
                and mapping.uuid not in self._stops:
            self._stops[mapping.uuid] = self._start_poller(mapping)

    def _stop(self, mapping_uuid: str) -> None:
        stop = self._stops.pop(mapping_uuid, None)
        if stop is not None:
            stop()

    def _save(self) -> None:
        save_json(self._path, [mapping for mapping in self._mappings.values()
                               if not mapping.source])
