"""CloudWatch Logs' metric filter operations (and TestMetricFilter) on the server's
port, in CloudWatch Logs' own JSON protocol (``POST /``, ``X-Amz-Target:
Logs_20140328.PutMetricFilter``, JSON 1.1 bodies; Amazon CloudWatch Logs API Reference):
so boto3's ``logs`` client with ``endpoint_url`` works, and ``fastinvoke logs
metric-filter`` reaches a running server.  Other CloudWatch Logs operations answer
``UnknownOperationException``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import ServiceError
from ..filterpatterns import compile_pattern
from ..invoker import Invoker
from ..logserrors import CloudWatchLogsError, InvalidParameterException
from ..metricfilters import MetricFilter
from .messages import Request, Response, json_response

TARGET_PREFIX = "Logs_20140328."
_MOST_DESCRIBED = 50  # DescribeMetricFilters' limit: at most, and by default
_MOST_TESTED = 50  # TestMetricFilter's log event messages


class UnknownOperationException(CloudWatchLogsError):
    """An X-Amz-Target that is none of the operations served here."""


class _Group(msgspec.Struct, rename="camel"):
    log_group_name: str | None = None


class _Describe(msgspec.Struct, rename="camel"):
    log_group_name: str | None = None
    filter_name_prefix: str | None = None
    metric_name: str | None = None
    metric_namespace: str | None = None
    limit: int = _MOST_DESCRIBED
    next_token: str | None = None


class _Test(msgspec.Struct, rename="camel"):
    filter_pattern: str
    log_event_messages: list[str]


class _Delete(msgspec.Struct, rename="camel"):
    log_group_name: str
    filter_name: str


def operation_of(request: Request) -> str | None:
    """The CloudWatch Logs operation ``request`` asks for, if it is one (its signature is
    then scoped to the ``logs`` service)."""
    target = request.headers.get("x-amz-target", "")
    if request.method != "POST" or not target.startswith(TARGET_PREFIX):
        return None
    return target.removeprefix(TARGET_PREFIX)


def action_and_resource(request: Request, *, region: str, account: str) -> tuple[str, str]:
    """What a CloudWatch Logs request asks IAM for: ``logs:<Operation>`` on the log
    group's ARN (``*`` for an operation on none)."""
    operation = operation_of(request) or ""
    try:
        group = msgspec.json.decode(request.body or b"{}", type=_Group).log_group_name
    except msgspec.MsgspecError:
        group = None  # the operation itself refuses the body
    resource = "*" if group is None else f"arn:aws:logs:{region}:{account}:log-group:{group}"
    return f"logs:{operation}", resource


def answer(invoker: Invoker, request: Request) -> Response:
    """The answer to one CloudWatch Logs request (CloudWatch's errors raised)."""
    operation = operation_of(request) or ""
    handler = _OPERATIONS.get(operation)
    if handler is None:
        raise UnknownOperationException(
            f"{operation} is not served here: fastinvoke answers CloudWatch Logs' "
            f"{', '.join(sorted(_OPERATIONS))}")
    return json_response(handler(invoker, request.body or b"{}"))


class Refused(CloudWatchLogsError):
    """An error of the server's guard (a signature, a role's policies) in CloudWatch Logs'
    shape, which botocore's ``logs`` client reads by its ``__type``."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(error.message)
        self.status, self.name = error.status, error.code

    @property
    def code(self) -> str:
        return self.name


def _decode(body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidParameterException(f"Invalid request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidParameterException(f"The request is not JSON: {exc}") from None


def _put(invoker: Invoker, body: bytes) -> dict[str, Any]:
    invoker.metric_filters.put(_decode(body, MetricFilter))
    return {}


def _describe(invoker: Invoker, body: bytes) -> dict[str, Any]:
    query = _decode(body, _Describe)
    if not 1 <= query.limit <= _MOST_DESCRIBED:
        raise InvalidParameterException(
            f"1 validation error detected: Value '{query.limit}' at 'limit' failed to satisfy "
            f"constraint: Member must have value between 1 and {_MOST_DESCRIBED}")
    found = invoker.metric_filters.describe(query.log_group_name, query.filter_name_prefix,
                                            query.metric_name, query.metric_namespace)
    start = int(query.next_token) if (query.next_token or "").isdigit() else 0
    end = start + query.limit
    page = {"metricFilters": found[start:end]}
    return page if end >= len(found) else {**page, "nextToken": str(end)}


def _delete(invoker: Invoker, body: bytes) -> dict[str, Any]:
    query = _decode(body, _Delete)
    invoker.metric_filters.delete(query.log_group_name, query.filter_name)
    return {}


def _test(invoker: Invoker, body: bytes) -> dict[str, Any]:
    """Which messages the pattern matches (numbered from 1), with the fields a
    space-delimited pattern names."""
    query = _decode(body, _Test)
    if not 1 <= len(query.log_event_messages) <= _MOST_TESTED:
        raise InvalidParameterException(
            f"1 validation error detected: Value at 'logEventMessages' failed to satisfy "
            f"constraint: Member must have length between 1 and {_MOST_TESTED}")
    try:
        pattern = compile_pattern(query.filter_pattern)
    except ValueError as exc:
        raise InvalidParameterException(f"Invalid metric filter pattern: {exc}") from None
    matches = []
    for number, message in enumerate(query.log_event_messages, 1):
        captures = pattern.captures(message)
        if captures is not None:
            extracted = ({} if pattern.kind != "space-delimited" else
                         {f"${name}": text for name, text in captures.items()})
            matches.append({"eventNumber": number, "eventMessage": message,
                            "extractedValues": extracted})
    return {"matches": matches}


_OPERATIONS: dict[str, Callable[[Invoker, bytes], Any]] = {
    "PutMetricFilter": _put, "DescribeMetricFilters": _describe,
    "DeleteMetricFilter": _delete, "TestMetricFilter": _test}
