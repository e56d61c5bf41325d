"""The Lambda API's versions and aliases (2015-03-31): PublishVersion,
ListVersionsByFunction, Create/Get/Update/Delete/ListAliases, as botocore's model
defines them."""

from __future__ import annotations

import asyncio

import msgspec

from ..errors import InvalidParameterValueException
from . import bodies, shapes
from .messages import Request, Response, json_response
from .operation import ApiContext
from .paging import listing, page, version_order


class PublishVersion(msgspec.Struct, rename="pascal"):
    code_sha256: str | None = None
    description: str = ""
    revision_id: str | None = None


class RoutingConfig(msgspec.Struct, rename="pascal"):
    additional_version_weights: dict[str, float] = {}


class AliasBody(msgspec.Struct, rename="pascal"):
    name: str | None = None
    function_version: str | None = None
    description: str | None = None
    routing_config: RoutingConfig | None = None
    revision_id: str | None = None


async def publish_version(api: ApiContext, request: Request, function: str | None,
                          query: dict[str, str]) -> Response:
    name = api.unqualified(function, query)
    body = bodies.decode(request.body, PublishVersion)
    record = await asyncio.to_thread(api.functions.publish, name, body.description,
                                     body.code_sha256, body.revision_id)
    return json_response(shapes.function_configuration(record, api.invoker), 201)


async def list_versions_by_function(api: ApiContext, request: Request, function: str | None,
                                    query: dict[str, str]) -> Response:
    name = api.unqualified(function, query)
    records = await asyncio.to_thread(api.functions.versions, name)
    chosen, marker = page(records, version_order, query)
    return json_response(listing("Versions", [
        shapes.function_configuration(record, api.invoker, listing=True,
                                      arn_qualifier=record.config.version)
        for record in chosen], marker))


async def create_alias(api: ApiContext, request: Request, function: str | None,
                       query: dict[str, str]) -> Response:
    name = api.unqualified(function, query)
    body = bodies.decode(request.body, AliasBody)
    if body.name is None or body.function_version is None:
        raise InvalidParameterValueException("CreateAlias needs Name and FunctionVersion")
    alias = await asyncio.to_thread(
        api.invoker.create_alias, name, body.name, body.function_version,
        description=body.description or "", weights=_weights(body))
    return json_response(shapes.alias_configuration(name, alias, api.invoker), 201)


async def get_alias(api: ApiContext, request: Request, function: str | None,
                    query: dict[str, str]) -> Response:
    name = api.unqualified(function, query)
    alias = api.invoker.get_alias(name, query["Name"])
    return json_response(shapes.alias_configuration(name, alias, api.invoker))


async def update_alias(api: ApiContext, request: Request, function: str | None,
                       query: dict[str, str]) -> Response:
    name = api.unqualified(function, query)
    body = bodies.decode(request.body, AliasBody)
    alias = await asyncio.to_thread(
        api.invoker.update_alias, name, query["Name"], function_version=body.function_version,
        description=body.description, weights=_weights(body), revision_id=body.revision_id)
    return json_response(shapes.alias_configuration(name, alias, api.invoker))


async def delete_alias(api: ApiContext, request: Request, function: str | None,
                       query: dict[str, str]) -> Response:
    name = api.unqualified(function, query)
    await asyncio.to_thread(api.invoker.delete_alias, name, query["Name"])
    return Response(204)


async def list_aliases(api: ApiContext, request: Request, function: str | None,
                       query: dict[str, str]) -> Response:
    name = api.unqualified(function, query)
    aliases = api.invoker.list_aliases(name, query.get("FunctionVersion"))
    chosen, marker = page(aliases, lambda alias: alias.name, query)
    return json_response(listing("Aliases", [
        shapes.alias_configuration(name, alias, api.invoker) for alias in chosen], marker))


def _weights(body: AliasBody) -> dict[str, float] | None:
    """The routing asked for: None (unchanged), or the weights ({} to remove them)."""
    return None if body.routing_config is None else \
        body.routing_config.additional_version_weights
