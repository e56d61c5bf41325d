"""A function's asynchronous-invocation settings (Lambda's EventInvokeConfig) and where
its destinations lead on this machine.

Destinations are ARNs, as in Lambda, or a file:
- a Lambda function ARN (or a bare function name): the record is the payload of an Event
  invocation of that function;
- an SQS queue, SNS topic or EventBridge bus ARN: nothing of AWS is reachable here, so the
  message is appended as one JSON line to ``<state dir>/destinations/<service>/<name>.jsonl``;
- ``file:///absolute/path.jsonl`` (or an absolute path): one JSON line per record, for
  harnesses that read the results.
"""

from __future__ import annotations

import os
import re
from typing import Literal

import msgspec

from ..errors import InvalidParameterValueException
from ..limits import check_range

DEFAULT_RETRIES = 2
DEFAULT_MAX_AGE_S = 21_600
MIN_MAX_AGE_S = 60
_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:(?P<service>lambda|sqs|sns|events):(?P<region>[a-z0-9-]*):"
    r"(?P<account>\d*):(?P<resource>.+)$")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class Target(msgspec.Struct, frozen=True):
    """Where a record goes: ``kind`` function (``name``) or file (``path``); ``envelope``
    says how the service would wrap it (``sqs``/``sns``: a message, ``events``: an
    EventBridge event, ``none``: the bare record)."""

    kind: Literal["function", "file"]
    name: str
    envelope: Literal["none", "sqs", "sns", "events"] = "none"
    arn: str = ""


class EventInvokeConfig(msgspec.Struct, kw_only=True):
    """``None`` means unset: Lambda's defaults apply (2 retries, 6 hours)."""

    maximum_retry_attempts: int | None = None
    maximum_event_age_s: int | None = None
    on_success: str | None = None
    on_failure: str | None = None
    last_modified: float = 0.0

    @property
    def retries(self) -> int:
        return DEFAULT_RETRIES if self.maximum_retry_attempts is None \
            else self.maximum_retry_attempts

    @property
    def max_age_ms(self) -> int:
        age = DEFAULT_MAX_AGE_S if self.maximum_event_age_s is None else self.maximum_event_age_s
        return age * 1000

    def validate(self, function_name: str) -> EventInvokeConfig:
        if self.maximum_retry_attempts is not None:
            check_range(self.maximum_retry_attempts, "maximumRetryAttempts", 0, DEFAULT_RETRIES)
        if self.maximum_event_age_s is not None:
            check_range(self.maximum_event_age_s, "maximumEventAgeInSeconds", MIN_MAX_AGE_S,
                         DEFAULT_MAX_AGE_S)
        for arn in (self.on_success, self.on_failure):
            if arn is not None:
                target = parse_destination(arn, "")
                if target.kind == "function" and target.name == function_name:
                    raise InvalidParameterValueException(
                        "You can't specify the function as a destination for itself.")
        return self


def parse_destination(arn: str, state_dir: str) -> Target:
    """Resolve a destination ARN (or file) to what this machine does with its records."""
    if arn.startswith("file://"):
        arn = arn[len("file://"):]
    if os.path.isabs(arn):
        return Target("file", arn)
    if _FUNCTION_NAME.match(arn):
        return Target("function", arn)
    match = _ARN.match(arn)
    if match is not None:
        service, resource = match["service"], match["resource"]
        if service == "lambda" and resource.startswith("function:"):
            name = resource.split(":")[1]
            if _FUNCTION_NAME.match(name):
                return Target("function", name)
        elif service in ("sqs", "sns") and ":" not in resource:
            return Target("file", _sink(state_dir, service, resource), service, arn)
        elif service == "events" and resource.startswith("event-bus/"):
            return Target("file", _sink(state_dir, service, resource[len("event-bus/"):]),
                          "events", arn)
    raise InvalidParameterValueException(
        f"The destination ARN {arn} is invalid: give a Lambda function, SQS queue, SNS topic "
        "or EventBridge bus ARN, or file:///path/to/records.jsonl")


def _sink(state_dir: str, service: str, name: str) -> str:
    return os.path.join(state_dir, "destinations", service, name + ".jsonl")


def check_dead_letter(arn: str) -> None:
    """A dead-letter target is a queue or topic (here: its file), never a function."""
    if parse_destination(arn, "").kind == "function":
        raise InvalidParameterValueException(
            f"The dead-letter target {arn} is invalid: give an SQS queue or SNS topic ARN, or "
            "file:///path/to/dead-letters.jsonl")
