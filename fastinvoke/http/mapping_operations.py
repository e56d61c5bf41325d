"""The Lambda API's event source mapping operations (2015-03-31): Create, Get, Update,
Delete and ListEventSourceMappings, as botocore's model defines them, for SQS queues,
DynamoDB streams and Kinesis streams."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec

from ..errors import InvalidParameterValueException
from ..sources.mappings import SQS, Mapping, source_kind
from . import bodies
from .messages import Request, Response, json_response
from .names import parse_function_name
from .operation import ApiContext

_REPORT = "ReportBatchItemFailures"
STREAM_BATCH_SIZE = 100  # a stream mapping's BatchSize when none is given (a queue's: 10)
_STREAM_MEMBERS = {  # MappingBody's members of stream sources -> Mapping fields
    "starting_position": "starting_position",
    "starting_position_timestamp": "starting_timestamp",
    "bisect_batch_on_function_error": "bisect",
    "maximum_retry_attempts": "max_retries",
    "maximum_record_age_in_seconds": "max_record_age_s",
    "parallelization_factor": "parallelization",
}


class ScalingConfig(msgspec.Struct, rename="pascal"):
    maximum_concurrency: int | None = None


class OnFailure(msgspec.Struct, rename="pascal"):
    destination: str | None = None


class DestinationConfig(msgspec.Struct, rename="pascal"):
    on_failure: OnFailure | None = None


class MappingBody(msgspec.Struct, rename="pascal"):
    """Members of Create and Update."""

    event_source_arn: str | None = None
    function_name: str | None = None
    enabled: bool | None = None
    batch_size: int | None = None
    maximum_batching_window_in_seconds: int | None = None
    function_response_types: list[str] | None = None
    scaling_config: ScalingConfig | None = None
    starting_position: str | None = None
    starting_position_timestamp: float | None = None
    bisect_batch_on_function_error: bool | None = None
    maximum_retry_attempts: int | None = None
    maximum_record_age_in_seconds: int | None = None
    parallelization_factor: int | None = None
    destination_config: DestinationConfig | None = None


async def create_event_source_mapping(api: ApiContext, request: Request, segment: str | None,
                                      query: dict[str, str]) -> Response:
    body = bodies.decode(request.body, MappingBody)
    if body.event_source_arn is None or body.function_name is None:
        raise InvalidParameterValueException("EventSourceArn and FunctionName are required")
    changes = _changes(body)
    if source_kind(body.event_source_arn) != SQS:
        changes.setdefault("batch_size", STREAM_BATCH_SIZE)
    mapping = Mapping(str(uuid.uuid4()), _function(api, body.function_name),
                      body.event_source_arn, **changes)
    created = await asyncio.to_thread(api.mappings.create, mapping)
    return json_response(_shape(api, created, "Creating"), 202)


async def get_event_source_mapping(api: ApiContext, request: Request, segment: str | None,
                                   query: dict[str, str]) -> Response:
    return json_response(_shape(api, api.mappings.get(segment or "")))


async def update_event_source_mapping(api: ApiContext, request: Request, segment: str | None,
                                      query: dict[str, str]) -> Response:
    body = bodies.decode(request.body, MappingBody)
    changes = _changes(body)
    if body.function_name is not None:
        changes["function"] = _function(api, body.function_name)
    updated = await asyncio.to_thread(api.mappings.update, segment or "", changes)
    return json_response(_shape(api, updated, "Updating"), 202)


async def delete_event_source_mapping(api: ApiContext, request: Request, segment: str | None,
                                      query: dict[str, str]) -> Response:
    deleted = await asyncio.to_thread(api.mappings.delete, segment or "")
    return json_response(_shape(api, deleted, "Deleting"), 202)


async def list_event_source_mappings(api: ApiContext, request: Request, segment: str | None,
                                     query: dict[str, str]) -> Response:
    function = query.get("FunctionName")
    found = api.mappings.all(None if function is None else _function(api, function),
                               query.get("EventSourceArn"))
    return json_response({"EventSourceMappings": [_shape(api, mapping) for mapping in found]})


def _function(api: ApiContext, text: str) -> str:
    name, _ = parse_function_name(text, None, region=api.invoker.region,
                                  account=api.invoker.account_id)
    api.invoker.get_function(name)  # ResourceNotFoundException for an unknown function
    return name


def _changes(body: MappingBody) -> dict[str, Any]:
    """The body's members as ``Mapping`` fields (those given)."""
    changes: dict[str, Any] = {}
    if body.enabled is not None:
        changes["enabled"] = body.enabled
    if body.batch_size is not None:
        changes["batch_size"] = body.batch_size
    if body.maximum_batching_window_in_seconds is not None:
        changes["window_s"] = body.maximum_batching_window_in_seconds
    if body.function_response_types is not None:
        unknown = set(body.function_response_types) - {_REPORT}
        if unknown:
            raise InvalidParameterValueException(
                f"FunctionResponseTypes {sorted(unknown)}: only {_REPORT} is valid")
        changes["report_failures"] = _REPORT in body.function_response_types
    if body.scaling_config is not None:
        changes["max_concurrency"] = body.scaling_config.maximum_concurrency
    for member, field in _STREAM_MEMBERS.items():
        if (value := getattr(body, member)) is not None:
            changes[field] = value
    if body.destination_config is not None:
        failure = body.destination_config.on_failure
        changes["on_failure"] = failure.destination if failure else None
    return changes


def _shape(api: ApiContext, mapping: Mapping, state: str | None = None) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "UUID": mapping.uuid,
        "BatchSize": mapping.batch_size,
        "MaximumBatchingWindowInSeconds": mapping.window_s,
        "EventSourceArn": mapping.source_arn,
        "FunctionArn": api.invoker.function_arn(mapping.function),
        "LastModified": mapping.last_modified,
        "LastProcessingResult": mapping.last_result,
        "State": state or ("Enabled" if mapping.enabled else "Disabled"),
        "StateTransitionReason": "USER_INITIATED",
        "FunctionResponseTypes": [_REPORT] if mapping.report_failures else [],
    }
    if mapping.max_concurrency is not None:
        shape["ScalingConfig"] = {"MaximumConcurrency": mapping.max_concurrency}
    if mapping.kind != SQS:
        shape.update({
            "StartingPosition": mapping.starting_position,
            "BisectBatchOnFunctionError": mapping.bisect,
            "MaximumRetryAttempts": mapping.max_retries,
            "MaximumRecordAgeInSeconds": mapping.max_record_age_s,
            "ParallelizationFactor": mapping.parallelization,
            "DestinationConfig": {"OnFailure": {"Destination": mapping.on_failure}
                                  if mapping.on_failure else {}},
        })
        if mapping.starting_timestamp is not None:
            shape["StartingPositionTimestamp"] = mapping.starting_timestamp
    return shape
