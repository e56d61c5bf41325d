"""The Lambda API's event source mapping operations (2015-03-31): Create, Get, Update,
Delete and ListEventSourceMappings, as botocore's model defines them, for SQS queues."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec

from ..errors import InvalidParameterValueException
from ..sources.mappings import Mapping
from . import bodies
from .messages import Request, Response, json_response
from .names import parse_function_name
from .operation import ApiContext

_REPORT = "ReportBatchItemFailures"


class ScalingConfig(msgspec.Struct, rename="pascal"):
    maximum_concurrency: int | None = None


class MappingBody(msgspec.Struct, rename="pascal"):
    """Members of Create and Update; those of stream sources are accepted and unused."""

    event_source_arn: str | None = None
    function_name: str | None = None
    enabled: bool | None = None
    batch_size: int | None = None
    maximum_batching_window_in_seconds: int | None = None
    function_response_types: list[str] | None = None
    scaling_config: ScalingConfig | None = None


async def create_event_source_mapping(api: ApiContext, request: Request, segment: str | None,
                                      query: dict[str, str]) -> Response:
    body = bodies.decode(request.body, MappingBody)
    if body.event_source_arn is None or body.function_name is None:
        raise InvalidParameterValueException("EventSourceArn and FunctionName are required")
    mapping = Mapping(str(uuid.uuid4()), _function(api, body.function_name),
                      body.event_source_arn, **_changes(body))
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
    return changes


def _shape(api: ApiContext, mapping: Mapping, state: str | None = None) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "UUID": mapping.uuid,
        "BatchSize": mapping.batch_size,
        "MaximumBatchingWindowInSeconds": mapping.window_s,
        "EventSourceArn": mapping.queue_arn,
        "FunctionArn": api.invoker.function_arn(mapping.function),
        "LastModified": mapping.last_modified,
        "LastProcessingResult": mapping.last_result,
        "State": state or ("Enabled" if mapping.enabled else "Disabled"),
        "StateTransitionReason": "USER_INITIATED",
        "FunctionResponseTypes": [_REPORT] if mapping.report_failures else [],
    }
    if mapping.max_concurrency is not None:
        shape["ScalingConfig"] = {"MaximumConcurrency": mapping.max_concurrency}
    return shape
