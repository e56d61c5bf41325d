"""A SAM template's event sources beyond API Gateway: ``Schedule``, ``ScheduleV2``,
``SQS`` and ``S3`` events, and the ``LambdaConfigurations`` of its buckets."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from ..apigw.template import Resolver
from ..errors import InvalidParameterValueException
from .mappings import Mapping, check, template_uuid
from .s3 import EVENT_TYPES, Subscription
from .schedules import Schedule, ScheduleError

SCHEDULE_TYPES = ("Schedule", "ScheduleV2")
STREAM_TYPES = ("DynamoDB", "Kinesis")
WIRED_TYPES = (*SCHEDULE_TYPES, "SQS", "S3", *STREAM_TYPES)  # beyond Api and HttpApi
BUCKET = "AWS::S3::Bucket"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's bucket naming rules
Functions = dict[str, tuple[str, dict[str, Any]]]  # logical id -> (name, properties)
_NOT_LOCAL = ("StartDate", "EndDate", "FlexibleTimeWindow", "RetryPolicy", "DeadLetterConfig")


def _events(functions: Functions,
            types: tuple[str, ...]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(logical id, function name, event name, event) of the functions' events of
    ``types``."""
    for lid, (function, props) in functions.items():
        events = props.get("Events")
        for name, event in (events.items() if isinstance(events, dict) else ()):
            if isinstance(event, dict) and event.get("Type") in types:
                yield lid, function, name, event


def read_schedules(stack: Resolver, functions: Functions, region: str,
                   account: str) -> tuple[list[Schedule], list[str]]:
    """The template's schedules, and what is wrong with those EventBridge would refuse
    (each ``Function.Event: expression: why``)."""
    schedules: list[Schedule] = []
    refused: list[str] = []
    for lid, function, name, event in _events(functions, SCHEDULE_TYPES):
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


def read_sqs_mappings(stack: Resolver, functions: Functions) -> list[Mapping]:
    """The template's ``SQS`` events as event source mappings (one Lambda would refuse is
    noted, not made)."""
    mappings: list[Mapping] = []
    for lid, function, name, event in _events(functions, ("SQS",)):
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


def read_stream_mappings(stack: Resolver, functions: Functions) -> list[Mapping]:
    """The template's ``DynamoDB`` and ``Kinesis`` events as event source mappings (one
    Lambda would refuse is noted, not made)."""
    mappings: list[Mapping] = []
    for lid, function, name, event in _events(functions, STREAM_TYPES):
        properties = event.get("Properties") or {}
        for key in ("FilterCriteria", "TumblingWindowInSeconds", "KafkaBootstrapServers"):
            if key in properties:
                stack.note(lid, f"event {name}: {key} ignored locally: every record reaches "
                           "the function, batch by batch")
        value = functools.partial(stack.get, lid, properties)
        failure = value("DestinationConfig") or {}
        failure = failure.get("OnFailure") if isinstance(failure, dict) else None
        source = f"{lid}.{name}"
        try:
            mappings.append(check(Mapping(
                template_uuid(source, function), function, str(value("Stream") or ""),
                int(value("BatchSize") or 100), int(value("MaximumBatchingWindowInSeconds") or 0),
                "ReportBatchItemFailures" in (value("FunctionResponseTypes") or []),
                enabled=value("Enabled") is not False, source=source,
                starting_position=value("StartingPosition"),
                starting_timestamp=value("StartingPositionTimestamp"),
                bisect=bool(value("BisectBatchOnFunctionError")),
                max_retries=int(_given(value("MaximumRetryAttempts"), -1)),
                max_record_age_s=int(_given(value("MaximumRecordAgeInSeconds"), -1)),
                parallelization=int(value("ParallelizationFactor") or 1),
                on_failure=failure.get("Destination") if isinstance(failure, dict) else None)))
        except (InvalidParameterValueException, ValueError, TypeError) as why:
            stack.note(lid, f"event {name}: not mapped: {why}")
    return mappings


def _given(value: Any, default: int) -> Any:
    return default if value is None else value


def read_s3_subscriptions(stack: Resolver, resources: dict[str, Any],
                          functions: Functions, stack_name: str) -> list[Subscription]:
    """The functions notified of bucket changes: the template's ``S3`` events, and its
    buckets' ``NotificationConfiguration.LambdaConfigurations`` (what SAM turns an ``S3``
    event into) naming one of ``functions``.  One S3 would refuse is noted, not made."""
    subscriptions: list[Subscription] = []
    for lid, function, name, event in _events(functions, ("S3",)):
        properties = event.get("Properties") or {}
        try:
            subscriptions.append(_subscription(
                f"{lid}.{name}", function,
                _bucket_name(stack, resources, properties.get("Bucket"), stack_name),
                stack.get(lid, properties, "Events"), stack.get(lid, properties, "Filter")))
        except ValueError as why:
            stack.note(lid, f"event {name}: not subscribed: {why}")
    served = {function for function, _ in functions.values()}
    for lid, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != BUCKET:
            continue
        notification = stack.get(lid, resource.get("Properties") or {},
                                 "NotificationConfiguration") or {}
        configs = notification.get("LambdaConfigurations") if isinstance(notification, dict) \
            else None
        for number, config in enumerate(configs if isinstance(configs, list) else ()):
            config = config if isinstance(config, dict) else {}
            arn = str(config.get("Function") or "").split(":")
            function = arn[6] if len(arn) >= 7 else ""
            if function not in served:
                stack.note(lid, f"LambdaConfigurations[{number}]: not subscribed: its Function "
                           f"{':'.join(arn)!r} is not a function of this template")
                continue
            try:
                subscriptions.append(_subscription(
                    f"{lid}.LambdaConfigurations[{number}]", function,
                    _bucket_name(stack, resources, {"Ref": lid}, stack_name),
                    config.get("Event"), config.get("Filter")))
            except ValueError as why:
                stack.note(lid, f"LambdaConfigurations[{number}]: not subscribed: {why}")
    return subscriptions


def _bucket_name(stack: Resolver, resources: dict[str, Any], ref: Any, stack_name: str) -> str:
    """The name of the bucket ``ref`` names: its ``BucketName``, else the name
    CloudFormation would make less its random suffix (``stack-logicalid``, lower-case)."""
    lid = ref.get("Ref") if isinstance(ref, dict) and len(ref) == 1 else None
    resource = resources.get(lid) if isinstance(lid, str) else None
    if not isinstance(resource, dict) or resource.get("Type") != BUCKET:
        raise ValueError("Bucket must be a Ref to an AWS::S3::Bucket of this template (as "
                         "SAM requires)")
    name = stack.get(lid, resource.get("Properties") or {}, "BucketName")
    name = str(name) if name is not None else f"{stack_name}-{lid}".lower()[:63]
    if not _BUCKET_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"bucket name {name!r} breaks S3's naming rules (3-63 lower-case "
                         "letters, digits, dots and hyphens)")
    return name


def _subscription(source: str, function: str, bucket: str, events: Any,
                  filter_: Any) -> Subscription:
    types = [events] if isinstance(events, str) else events
    if not isinstance(types, list) or not types:
        raise ValueError("Events must be an S3 event type or a list of them (such as "
                         "s3:ObjectCreated:*)")
    for kind in types:
        if kind not in EVENT_TYPES:
            raise ValueError(f"{kind!r} is not an S3 event type (such as s3:ObjectCreated:*, "
                             "s3:ObjectRemoved:Delete)")
    rules: dict[str, str] = {}
    key_filter = filter_.get("S3Key") if isinstance(filter_, dict) else None
    listed = key_filter.get("Rules") if isinstance(key_filter, dict) else None
    for rule in listed if isinstance(listed, list) else ():
        name = str(rule.get("Name", "") if isinstance(rule, dict) else "").lower()
        if name not in ("prefix", "suffix") or not isinstance(rule.get("Value"), str):
            raise ValueError(f"filter rule {rule!r}: give Name prefix or suffix, and a Value")
        if name in rules:
            raise ValueError(f"more than one {name} rule in Filter.S3Key.Rules")
        rules[name] = rule["Value"]
    return Subscription(source, function, bucket, tuple(types), rules.get("prefix", ""),
                        rules.get("suffix", ""))
