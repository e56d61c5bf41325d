"""A SAM template's event sources beyond API Gateway: ``Schedule``, ``ScheduleV2`` and
``SQS`` events."""

from __future__ import annotations

from typing import Any

from ..apigw.template import Resolver
from ..errors import InvalidParameterValueException
from .mappings import Mapping, check, template_uuid
from .schedules import Schedule, ScheduleError

SCHEDULE_TYPES = ("Schedule", "ScheduleV2")
WIRED_TYPES = (*SCHEDULE_TYPES, "SQS")  # beyond Api and HttpApi
_NOT_LOCAL = ("StartDate", "EndDate", "FlexibleTimeWindow", "RetryPolicy", "DeadLetterConfig")


def read_schedules(stack: Resolver, functions: dict[str, tuple[str, dict[str, Any]]],
                   region: str, account: str) -> tuple[list[Schedule], list[str]]:
    """The template's schedules, and what is wrong with those EventBridge would refuse
    (each ``Function.Event: expression: why``)."""
    schedules: list[Schedule] = []
    refused: list[str] = []
    for lid, (function, props) in functions.items():
        events = props.get("Events")
        for name, event in (events.items() if isinstance(events, dict) else ()):
            if not isinstance(event, dict) or event.get("Type") not in SCHEDULE_TYPES:
                continue
            properties = event.get("Properties") or {}
            v2 = event["Type"] == "ScheduleV2"
            expression = stack.get(lid, properties, "ScheduleExpression" if v2 else "Schedule")
            zone = stack.get(lid, properties, "ScheduleExpressionTimezone") if v2 else None
            rule = stack.get(lid, properties, "Name") or f"{lid}{name}"
            arn = (f"arn:aws:scheduler:{region}:{account}:schedule/default/{rule}" if v2
                   else f"arn:aws:events:{region}:{account}:rule/{rule}")
            enabled = stack.get(lid, properties, "Enabled")
            state = stack.get(lid, properties, "State")
            payload = stack.get(lid, properties, "Input")
            for key in _NOT_LOCAL:
                if key in properties:
                    stack.note(lid, f"event {name}: {key} ignored locally")
            try:
                schedules.append(Schedule(
                    f"{lid}.{name}", function, str(expression or ""), arn, str(zone or "UTC"),
                    enabled is not False and state != "DISABLED",
                    None if payload is None else str(payload)))
            except ScheduleError as why:
                refused.append(f"{lid}.{name}: {why}")
    return schedules, refused


def read_sqs_mappings(stack: Resolver,
                      functions: dict[str, tuple[str, dict[str, Any]]]) -> list[Mapping]:
    """The template's ``SQS`` events as event source mappings (one Lambda would refuse is
    noted, not made)."""
    mappings: list[Mapping] = []
    for lid, (function, props) in functions.items():
        events = props.get("Events")
        for name, event in (events.items() if isinstance(events, dict) else ()):
            if not isinstance(event, dict) or event.get("Type") != "SQS":
                continue
            properties = event.get("Properties") or {}
            queue = stack.get(lid, properties, "Queue")
            scaling = stack.get(lid, properties, "ScalingConfig") or {}
            types = stack.get(lid, properties, "FunctionResponseTypes") or []
            if "FilterCriteria" in properties:
                stack.note(lid, f"event {name}: FilterCriteria ignored: every message reaches "
                           "the function")
            source = f"{lid}.{name}"
            try:
                mappings.append(check(Mapping(
                    template_uuid(source, function), function, str(queue or ""),
                    int(stack.get(lid, properties, "BatchSize") or 10),
                    int(stack.get(lid, properties, "MaximumBatchingWindowInSeconds") or 0),
                    "ReportBatchItemFailures" in types,
                    scaling.get("MaximumConcurrency") if isinstance(scaling, dict) else None,
                    stack.get(lid, properties, "Enabled") is not False, source=source)))
            except (InvalidParameterValueException, ValueError) as why:
                stack.note(lid, f"event {name}: not mapped: {why}")
    return mappings
