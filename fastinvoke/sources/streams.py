"""Polling a DynamoDB or Kinesis stream for a mapping, with Lambda's rules for stream
sources (Lambda Developer Guide: "How Lambda processes records from Amazon Kinesis Data
Streams", "Using AWS Lambda with Amazon DynamoDB", "Configuring partial batch response"):

* each shard is read in order, from ``StartingPosition`` the first time and then from its
  checkpoint (kept in the state directory, so that a restart resumes where it stopped); a
  child shard only once its parent is read to its end;
* batches of up to ``BatchSize`` records gathered for at most
  ``MaximumBatchingWindowInSeconds``, one synchronous invocation each; with
  ``ParallelizationFactor`` N, N batches of a shard at once, records of one partition key
  always in the same one, in order;
* a batch that fails is retried (the shard waits) until it succeeds, until
  ``MaximumRetryAttempts`` retries, or until its records are older than
  ``MaximumRecordAgeInSeconds``; ``BisectBatchOnFunctionError`` splits a failing batch in
  two first (a split is not a retry); with ``ReportBatchItemFailures`` the records before
  the first reported failure are done and the batch is retried from it.  A batch given up
  goes, as its description (``DDBStreamBatchInfo`` / ``KinesisBatchInfo``), to the
  on-failure destination, and the shard moves on.

Records are delivered at least once: a batch that ran but whose checkpoint was not yet
written when the server stopped runs again after the restart; a clean stop writes it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from ..errors import ServiceError
from ..events.config import parse_destination
from ..jsonfile import load_json, save_json
from ..result import InvokeResult
from .mappings import DYNAMODB, Mapping
from .reports import Reporter
from .sqs import failed_ids
from .stream_sources import Shard, StreamRecord, StreamSource

POLL_S = 0.25  # how often an idle shard is read again (Lambda: four times a second)
SCAN_S = 10.0  # how often the stream's shards are listed
_MAX_BACKOFF_S = 5.0

# (destination ARN, the JSON record) -> sent
SendFailure = Callable[[str, bytes], None]


class Checkpoints:
    """The last sequence number done in each shard of one mapping (any thread)."""

    def __init__(self, state_dir: str, mapping_uuid: str) -> None:
        directory = os.path.join(state_dir, "stream-checkpoints")
        os.makedirs(directory, exist_ok=True)
        self._path = os.path.join(directory, f"{mapping_uuid}.json")
        self._lock = threading.Lock()
        self.done: dict[str, str] = load_json(self._path, dict[str, str], {})

    def advance(self, shard: str, sequence: str) -> None:
        with self._lock:
            self.done[shard] = sequence
            save_json(self._path, self.done)


class StreamPoller:
    """Reads every shard of ``source`` for ``mapping`` (a thread per shard) and invokes
    ``invoke(function, event_bytes)`` synchronously per batch; ``record(uuid, text)``
    notes the mapping's last processing result."""

    def __init__(self, mapping: Mapping, source: StreamSource,
                 invoke: Callable[[str, bytes], InvokeResult],
                 record: Callable[[str, str], None], checkpoints: Checkpoints,
                 send_failure: SendFailure, function_arn: str) -> None:
        self.mapping = mapping
        self.source = source
        self._invoke = invoke
        self._record = record
        self._checkpoints = checkpoints
        self._send_failure = send_failure
        self._function_arn = function_arn
        self._stopped = threading.Event()
        self._finished: set[str] = set()  # shards read to their end
        self._reading: dict[str, threading.Thread] = {}
        self._report = Reporter(f"fastinvoke: stream mapping {mapping.uuid} of "
                                f"{mapping.function}")
        self._thread = threading.Thread(target=self._scan, daemon=True,
                                        name=f"fastinvoke-stream-{mapping.source_name}")
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        for thread in list(self._reading.values()):
            thread.join()

    # -- shards -----------------------------------------------------------------------------

    def _scan(self) -> None:
        backoff = 1.0
        while not self._stopped.is_set():
            try:
                shards = self.source.shards()
            except Exception as error:  # noqa: BLE001 - any failure of the endpoint: retried
                self._report(f"cannot list the shards of {self.source.arn}: {error}; retrying")
                if self._stopped.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            known = {shard.id for shard in shards}
            for shard in shards:
                if shard.id not in self._reading:
                    thread = threading.Thread(
                        target=self._read, args=(shard, known), daemon=True,
                        name=f"fastinvoke-stream-{self.mapping.source_name}-{shard.id[-8:]}")
                    self._reading[shard.id] = thread
                    thread.start()
            if self._stopped.wait(SCAN_S):
                return

    def _read(self, shard: Shard, known: set[str]) -> None:
        """Read ``shard`` to its end (or until stopped), batch by batch."""
        while shard.parent in known and shard.parent not in self._finished:
            if self._stopped.wait(POLL_S):
                return
        mapping = self.mapping
        iterator: str | None = None
        pending: list[StreamRecord] = []
        first_at = 0.0  # when the first record of ``pending`` was read
        while not self._stopped.is_set():
            try:
                if iterator is None:  # (again after an error: past what is gathered)
                    iterator = self._iterator(shard.id, pending[-1].sequence if pending
                                              else self._checkpoints.done.get(shard.id))
                records, iterator = self.source.records(
                    shard.id, iterator, mapping.batch_size - len(pending))
            except Exception as error:  # noqa: BLE001 - retried from the checkpoint
                self._report(f"cannot read shard {shard.id} of {self.source.arn}: {error}; "
                             "retrying")
                iterator = None
                if self._stopped.wait(1.0):
                    return
                continue
            if records and not pending:
                first_at = time.monotonic()
            pending += records
            closed = iterator is None
            if pending and (closed or len(pending) >= mapping.batch_size
                            or time.monotonic() - first_at >= mapping.window_s):
                if not self._process(shard.id, pending):
                    return  # stopped: the batch runs again after a restart
                pending = []
            if closed:
                self._finished.add(shard.id)
                return
            if not records and self._stopped.wait(POLL_S):
                return

    def _iterator(self, shard: str, after: str | None) -> str:
        """From just after sequence number ``after``, or where the mapping starts."""
        if after is not None:
            return self.source.iterator(shard, "AFTER_SEQUENCE_NUMBER", after)
        mapping = self.mapping
        return self.source.iterator(shard, mapping.starting_position or "LATEST",
                                    timestamp=mapping.starting_timestamp)

    # -- batches ----------------------------------------------------------------------------

    def _process(self, shard: str, batch: list[StreamRecord]) -> bool:
        """Run ``batch`` (in ``ParallelizationFactor`` lanes by partition key), then write
        the shard's checkpoint; False if stopped before it was done."""
        lanes = self.mapping.parallelization
        if lanes == 1:
            done = self._deliver(shard, batch)
        else:
            split: list[list[StreamRecord]] = [[] for _ in range(lanes)]
            for record in batch:
                split[zlib.crc32(record.key.encode()) % lanes].append(record)
            results: list[bool] = []
            threads = [threading.Thread(target=lambda part=part: results.append(
                self._deliver(shard, part))) for part in split if part]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            done = all(results)
        if done:
            self._checkpoints.advance(shard, batch[-1].sequence)
        return done

    def _deliver(self, shard: str, records: list[StreamRecord]) -> bool:
        """Invoke the function with ``records`` until they are done or given up; False
        if stopped first."""
        mapping = self.mapping
        batches = [records]
        retries = 0
        backoff = 0.1
        while batches:
            batch = self._fresh(shard, batches[0], retries)
            if not batch:
                batches.pop(0)
                retries = 0
                continue
            failed_from = self._run(batch)
            if failed_from is None:
                batches.pop(0)
                retries = 0
                backoff = 0.1
                continue
            if failed_from > 0:  # a partial batch response: those before are done
                batches[0] = batch[failed_from:]
            elif mapping.bisect and len(batch) > 1:
                half = len(batch) // 2
                batches[0:1] = [batch[:half], batch[half:]]
                continue
            else:
                batches[0] = batch
            retries += 1
            if mapping.max_retries != -1 and retries > mapping.max_retries:
                self._give_up(shard, batches.pop(0), "RetryAttemptsExhausted", retries)
                retries = 0
                continue
            if self._stopped.wait(backoff):
                return False
            backoff = min(backoff * 2, _MAX_BACKOFF_S)
        return True

    def _fresh(self, shard: str, batch: list[StreamRecord],
               retries: int) -> list[StreamRecord]:
        """``batch`` without the records older than ``MaximumRecordAgeInSeconds`` (given
        up, with the reason)."""
        limit = self.mapping.max_record_age_s
        if limit == -1:
            return batch
        oldest = time.time() - limit
        expired = [record for record in batch if record.arrival < oldest]
        if expired:
            self._give_up(shard, expired, "RecordAgeExceeded", retries)
        return [record for record in batch if record.arrival >= oldest]

    def _run(self, batch: list[StreamRecord]) -> int | None:
        """One invocation: None if the batch is done, else the index of its first record
        to retry (0: all of them)."""
        mapping = self.mapping
        event = msgspec.json.encode({"Records": [record.record for record in batch]})
        try:
            result = self._invoke(mapping.function, event)
        except ServiceError as error:  # throttled, deleted...: retried
            self._record(mapping.uuid, f"PROBLEM: {error.code}")
            return 0
        if result.function_error is not None:
            self._record(mapping.uuid, "PROBLEM: Function call failed")
            return 0
        if mapping.report_failures:
            failed = failed_ids(result.payload)
            if failed is None:
                self._record(mapping.uuid, "PROBLEM: Function response malformed")
                return 0
            positions = [index for index, record in enumerate(batch)
                         if record.sequence in failed]
            if failed and not positions:  # identifiers of no record here: all failed
                return 0
            if positions:
                self._record(mapping.uuid, "PROBLEM: Partial batch failure")
                return positions[0]
        self._record(mapping.uuid, "OK")
        return None

    def _give_up(self, shard: str, batch: list[StreamRecord], condition: str,
                 attempts: int) -> None:
        """Send ``batch``'s description to the on-failure destination; the shard moves
        on (Lambda's "discarded" batch)."""
        destination = self.mapping.on_failure
        print(f"fastinvoke: stream mapping {self.mapping.uuid} of {self.mapping.function}: "
              f"gave up {len(batch)} records of shard {shard} ({condition}), "
              + (f"described in {destination}" if destination else
                 "with no on-failure destination to describe them"),
              file=sys.stderr, flush=True)
        if destination is None:
            return
        info = "DDBStreamBatchInfo" if self.mapping.kind == DYNAMODB else "KinesisBatchInfo"
        description = {
            "requestContext": {"requestId": "", "functionArn": self._function_arn,
                               "condition": condition, "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                                "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": _iso(time.time()),
            info: {"shardId": shard, "startSequenceNumber": batch[0].sequence,
                   "endSequenceNumber": batch[-1].sequence,
                   "approximateArrivalOfFirstRecord": _iso(batch[0].arrival),
                   "approximateArrivalOfLastRecord": _iso(batch[-1].arrival),
                   "batchSize": len(batch), "streamArn": self.source.arn},
        }
        try:
            self._send_failure(destination, msgspec.json.encode(description))
        except Exception as error:  # noqa: BLE001 - the shard goes on; said
            self._report(f"cannot send to {destination}: {error}")


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def failure_sender(state_dir: str, sqs_endpoint: str | None) -> SendFailure:
    """Where a given-up batch's description goes: an SQS queue at ``sqs_endpoint`` when the
    server reads one, else the queue's or topic's JSON-lines file, as Event invocations'
    destinations do."""
    queues = None
    if sqs_endpoint is not None:
        from .sqs import QueueSender

        queues = QueueSender(sqs_endpoint)

    def send(arn: str, record: bytes) -> None:
        target = parse_destination(arn, state_dir)
        if target.envelope == "sqs" and queues is not None:
            queues(arn, record.decode(), {})
            return
        os.makedirs(os.path.dirname(target.name), exist_ok=True)
        with open(target.name, "ab") as sink:  # one write per record: never interleaved
            sink.write(record + b"\n")

    return send
