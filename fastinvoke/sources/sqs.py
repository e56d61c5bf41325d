"""Polling an SQS queue for a mapping, with Lambda's rules ("Using Lambda with Amazon
SQS" in AWS's guide): batches of up to ``BatchSize`` records gathered for at most
``MaximumBatchingWindowInSeconds`` (without a window, a batch goes as soon as records
arrive), one synchronous invocation per batch, the batch's messages deleted when it
succeeds; when it fails they stay, to come back after the queue's visibility timeout (and
to its redrive policy's dead-letter queue).  With ``ReportBatchItemFailures`` the
function's ``batchItemFailures`` stay and the rest are deleted; an answer not of that
shape fails the whole batch.  ``ScalingConfig.MaximumConcurrency`` (default 5, the
pollers Lambda starts with) bounds how many batches run at once.

The queue is reached with boto3 (``pip install 'fastinvoke[sqs]'``) at the endpoint
``serve --sqs-endpoint`` names; an endpoint that is down is retried with back-off and
reported once a minute, never stopping the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import ServiceError
from ..result import InvokeResult
from .mappings import Mapping
from .reports import Reporter
from .shapes import sqs_record

DEFAULT_POLLERS = 5
_WAIT_S = 1  # long-poll wait: how soon a poller notices it is stopped
_MAX_BACKOFF_S = 30.0


def sqs_client(endpoint: str, region: str) -> Any:
    import boto3  # the sqs extra's: imported only where queues are read
    from botocore.config import Config

    return boto3.client("sqs", endpoint_url=endpoint, region_name=region,
                        config=Config(retries={"max_attempts": 2}, read_timeout=_WAIT_S + 10))


class QueueSender:
    """Sends messages to SQS queues by ARN at ``endpoint`` (destinations and dead-letter
    queues of Event invocations).  Any thread."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}  # region -> client
        self._urls: dict[str, str] = {}  # queue ARN -> its URL

    def __call__(self, queue_arn: str, body: str, attributes: dict[str, dict[str, str]]) -> None:
        _, _, _, region, account, name = queue_arn.split(":")
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = self._clients[region] = sqs_client(self.endpoint, region)
            url = self._urls.get(queue_arn)
            if url is None:
                url = self._urls[queue_arn] = client.get_queue_url(
                    QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        client.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)


class Poller:
    """``mapping``'s poller threads; ``stop`` ends them (at most one long poll later).
    ``invoke(function, event_bytes)`` runs a batch synchronously; ``record(uuid, text)``
    notes the mapping's last processing result."""

    def __init__(self, mapping: Mapping, endpoint: str,
                 invoke: Callable[[str, bytes], InvokeResult],
                 record: Callable[[str, str], None]) -> None:
        self.mapping = mapping
        self.endpoint = endpoint
        self._invoke = invoke
        self._record = record
        self._stopped = threading.Event()
        self._queue_url: str | None = None
        self._url_lock = threading.Lock()
        self._report = Reporter(f"fastinvoke: SQS mapping {mapping.uuid} of {mapping.function}")
        self._client = sqs_client(endpoint, mapping.source_arn.split(":")[3])
        self._threads = [threading.Thread(target=self._run, daemon=True,
                                          name=f"fastinvoke-sqs-{mapping.source_name}")
                         for _ in range(mapping.max_concurrency or DEFAULT_POLLERS)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        backoff = 1.0
        while not self._stopped.is_set():
            try:
                messages = self._batch()
            except Exception as error:  # noqa: BLE001 - any failure of the endpoint: retried
                self._report(f"cannot read {self.mapping.source_arn} at {self.endpoint}: "
                             f"{error}; retrying")
                if self._stopped.wait(backoff):
                    return
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            backoff = 1.0
            if messages:
                self._process(messages)

    def _url(self) -> str:
        with self._url_lock:
            if self._queue_url is None:
                _, _, _, _, account, name = self.mapping.source_arn.split(":")
                self._queue_url = self._client.get_queue_url(
                    QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            return self._queue_url

    def _batch(self) -> list[dict[str, Any]]:
        """Up to ``BatchSize`` messages, gathered for at most the batching window."""
        mapping, url = self.mapping, self._url()
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + mapping.window_s
        while len(messages) < mapping.batch_size and not self._stopped.is_set():
            left = deadline - time.monotonic()
            if messages and left <= 0:
                break
            answer = self._client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(10, mapping.batch_size - len(messages)),
                WaitTimeSeconds=max(0, min(_WAIT_S, int(left))) if messages else _WAIT_S,
                AttributeNames=["All"], MessageAttributeNames=["All"])
            messages += answer.get("Messages", [])
            if messages and mapping.window_s == 0:
                break  # no window: a batch goes as soon as records arrive
        return messages

    def _process(self, messages: list[dict[str, Any]]) -> None:
        mapping = self.mapping
        event = msgspec.json.encode(
            {"Records": [sqs_record(mapping.source_arn, message) for message in messages]})
        try:
            result = self._invoke(mapping.function, event)
        except ServiceError as error:  # throttled, deleted...: the messages come back later
            self._record(mapping.uuid, f"PROBLEM: {error.code}")
            return
        if result.function_error is not None:
            self._record(mapping.uuid, "PROBLEM: Function call failed")
            return
        done = messages
        if mapping.report_failures:
            failed = failed_ids(result.payload)
            if failed is None:
                self._record(mapping.uuid, "PROBLEM: Function response malformed")
                return
            done = [message for message in messages if message["MessageId"] not in failed]
        self._delete(done)
        self._record(mapping.uuid, "OK")

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start:start + 10]
            self._client.delete_message_batch(QueueUrl=self._url(), Entries=[
                {"Id": str(number), "ReceiptHandle": message["ReceiptHandle"]}
                for number, message in enumerate(chunk)])



def failed_ids(payload: bytes) -> set[str] | None:
    """The ``itemIdentifier``s of a ``{"batchItemFailures": [...]}`` answer (an empty or
    null answer: none failed); None for an answer of another shape."""
    try:
        answer = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    if answer is None or answer == {} or answer == {"batchItemFailures": None}:
        return set()
    failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
    if not isinstance(failures, list):
        return None
    ids = set()
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(item, str) or not item:
            return None
        ids.add(item)
    return ids
