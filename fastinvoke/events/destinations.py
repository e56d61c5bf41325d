"""Delivery of a finished event's record to its destinations and dead-letter target.

An SQS queue's records go to the queue itself when the server reads an SQS endpoint
(``send_sqs``), else, as every other queue, topic and bus's, to its JSON-lines file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from . import records
from .config import parse_destination
from .queue import Lane
from .store import QueuedEvent

# (queue ARN, message body, message attributes) -> the message sent
SendSqs = Callable[[str, str, dict[str, dict[str, str]]], None]


class Deliverer:
    """Sends records where a lane's configuration says (the event queue's pump thread).

    ``invoke_event(name, payload)`` starts an Event invocation of a destination function.
    Raising tells the queue the delivery failed (it counts and logs it)."""

    def __init__(self, state_dir: str, region: str, account_id: str,
                 invoke_event: Callable[[str, bytes], None],
                 send_sqs: SendSqs | None = None) -> None:
        self.state_dir = state_dir
        self.region = region
        self.account_id = account_id
        self._invoke_event = invoke_event
        self._send_sqs = send_sqs

    def __call__(self, lane: Lane, event: QueuedEvent, condition: str) -> None:
        now_ms = time.time_ns() // 1_000_000
        success = condition == records.SUCCESS
        arn = lane.config.on_success if success else lane.config.on_failure
        if arn:
            target = parse_destination(arn, self.state_dir)
            version = event.last_version or lane.pool.config.version
            # Qualified as invoked (a version's or alias's lane), else as $LATEST.
            function_arn = lane.arn if ":" in lane.key else lane.arn + ":$LATEST"
            record = records.destination_record(event, function_arn, version, condition,
                                                now_ms)
            if target.kind == "function":
                self._invoke_event(target.name, record)
            elif target.envelope == "sqs" and self._send_sqs is not None:
                self._send_sqs(target.arn, record.decode(), {})
            else:
                _append(target.name, records.wrap(target, record, success, function_arn,
                                                  self.region, self.account_id, now_ms))
        if not success and lane.dead_letter:
            target = parse_destination(lane.dead_letter, self.state_dir)
            if target.envelope == "sqs" and self._send_sqs is not None:
                self._send_sqs(target.arn, event.payload.decode(), records.sqs_attributes(event))
            else:
                _append(target.name, records.dead_letter(target, event, now_ms))


def _append(path: str, line: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "ab") as sink:  # one write per record: lines never interleave
        sink.write(line + b"\n")
