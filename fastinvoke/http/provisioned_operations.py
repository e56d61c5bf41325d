"""The Lambda API's provisioned concurrency (2019-09-30): Put, Get, Delete and
ListProvisionedConcurrencyConfigs on a version or alias, as botocore's model defines
them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from ..errors import InvalidParameterValueException
from . import bodies
from .messages import Request, Response, json_response
from .operation import ApiContext
from .paging import listing, page


class PutProvisioned(msgspec.Struct, rename="pascal"):
    provisioned_concurrent_executions: int


async def put_provisioned_concurrency(api: ApiContext, request: Request, function: str | None,
                                      query: dict[str, str]) -> Response:
    name, qualifier = _qualified(api, function, query)
    body = bodies.decode(request.body, PutProvisioned)
    await asyncio.to_thread(api.invoker.put_provisioned_concurrency, name, qualifier,
                            body.provisioned_concurrent_executions)
    counts = api.invoker.get_provisioned_concurrency(name, qualifier)
    return json_response(_config(counts), 202)


async def get_or_list_provisioned_concurrency(api: ApiContext, request: Request,
                                              function: str | None,
                                              query: dict[str, str]) -> Response:
    """``GET .../provisioned-concurrency``: ListProvisionedConcurrencyConfigs with
    ``List=ALL``, else GetProvisionedConcurrencyConfig."""
    if query.get("List") == "ALL":
        name = api.unqualified(function, query)
        configs = sorted(api.invoker.provisioned_concurrency(name).items())
        chosen, marker = page(configs, lambda item: item[0], query)
        arn = api.invoker.function_arn(name)
        return json_response(listing("ProvisionedConcurrencyConfigs", [
            {"FunctionArn": f"{arn}:{qualifier}", **_config(counts)}
            for qualifier, counts in chosen], marker))
    name, qualifier = _qualified(api, function, query)
    return json_response(_config(api.invoker.get_provisioned_concurrency(name, qualifier)))


async def delete_provisioned_concurrency(api: ApiContext, request: Request,
                                         function: str | None,
                                         query: dict[str, str]) -> Response:
    name, qualifier = _qualified(api, function, query)
    await asyncio.to_thread(api.invoker.delete_provisioned_concurrency, name, qualifier)
    return Response(204)


def _qualified(api: ApiContext, function: str | None,
               query: dict[str, str]) -> tuple[str, str]:
    name, qualifier = api.qualified_name(function, query)
    if qualifier is None:
        raise InvalidParameterValueException(
            "Provisioned concurrency is configured on a version or an alias: give Qualifier")
    return name, qualifier


def _config(counts: tuple[int, int]) -> dict[str, Any]:
    requested, ready = counts
    return {"RequestedProvisionedConcurrentExecutions": requested,
            "AvailableProvisionedConcurrentExecutions": ready,
            "AllocatedProvisionedConcurrentExecutions": ready,
            "Status": "READY" if ready >= requested else "IN_PROGRESS"}
