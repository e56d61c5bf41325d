"""The Lambda API's function URL operations (2021-10-31): Create, Get, Update, Delete
and ListFunctionUrlConfigs, as botocore's model defines them."""

from __future__ import annotations

from typing import Any

import msgspec

from ..apigw.routes import Cors
from ..apigw.url_configs import AUTH_TYPES, INVOKE_MODES, UrlConfig
from ..errors import ValidationException
from . import bodies
from .messages import Request, Response, json_response
from .operation import ApiContext


class CorsBody(msgspec.Struct, rename="pascal"):
    allow_credentials: bool = False
    allow_headers: list[str] = []
    allow_methods: list[str] = []
    allow_origins: list[str] = []
    expose_headers: list[str] = []
    max_age: int | None = None


class UrlConfigBody(msgspec.Struct, rename="pascal"):
    auth_type: str | None = None
    cors: CorsBody | None = None
    invoke_mode: str | None = None


async def create_function_url_config(api: ApiContext, request: Request, function: str | None,
                                     query: dict[str, str]) -> Response:
    name = api.latest_name(function, query)
    body = bodies.decode(request.body, UrlConfigBody)
    if body.auth_type is None:
        raise ValidationException("1 validation error detected: Value null at 'authType' "
                                  "failed to satisfy constraint: Member must not be null")
    _check(body)
    api.invoker.get_function(name)  # ResourceNotFoundException for an unknown function
    config = api.urls.create(name, body.auth_type, body.invoke_mode or "BUFFERED",
                             _cors(body.cors), api.invoker.function_arn(name))
    return json_response(_shape(api, config, modified=False), 201)


async def get_function_url_config(api: ApiContext, request: Request, function: str | None,
                                  query: dict[str, str]) -> Response:
    name = api.latest_name(function, query)
    api.invoker.get_function(name)
    return json_response(_shape(api, api.urls.get(name)))


async def update_function_url_config(api: ApiContext, request: Request, function: str | None,
                                     query: dict[str, str]) -> Response:
    name = api.latest_name(function, query)
    body = bodies.decode(request.body, UrlConfigBody)
    _check(body)
    api.invoker.get_function(name)
    config = api.urls.update(name, body.auth_type, body.invoke_mode, _cors(body.cors),
                             cors_given=body.cors is not None)
    return json_response(_shape(api, config))


async def delete_function_url_config(api: ApiContext, request: Request, function: str | None,
                                     query: dict[str, str]) -> Response:
    name = api.latest_name(function, query)
    api.invoker.get_function(name)
    api.urls.delete(name)
    return Response(204)


async def list_function_url_configs(api: ApiContext, request: Request, function: str | None,
                                    query: dict[str, str]) -> Response:
    name = api.latest_name(function, query)
    api.invoker.get_function(name)
    try:
        configs = [_shape(api, api.urls.get(name))]
    except LookupError:
        configs = []
    return json_response({"FunctionUrlConfigs": configs})


def _check(body: UrlConfigBody) -> None:
    for field, value, allowed in (("authType", body.auth_type, AUTH_TYPES),
                                  ("invokeMode", body.invoke_mode, INVOKE_MODES)):
        if value is not None and value not in allowed:
            raise ValidationException(
                f"1 validation error detected: Value '{value[:50]}' at '{field}' failed to "
                f"satisfy constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")


def _cors(body: CorsBody | None) -> Cors | None:
    if body is None:
        return None
    return Cors(tuple(body.allow_origins), tuple(m.upper() for m in body.allow_methods),
                tuple(body.allow_headers), tuple(body.expose_headers), body.max_age,
                body.allow_credentials)


def _cors_shape(cors: Cors) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "AllowCredentials": cors.allow_credentials, "AllowHeaders": list(cors.allow_headers),
        "AllowMethods": list(cors.allow_methods), "AllowOrigins": list(cors.allow_origins),
        "ExposeHeaders": list(cors.expose_headers)}
    if cors.max_age is not None:
        shape["MaxAge"] = cors.max_age
    return shape


def _shape(api: ApiContext, config: UrlConfig, modified: bool = True) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "FunctionUrl": api.urls.url(config),
        "FunctionArn": api.invoker.function_arn(config.function),
        "AuthType": config.auth_type,
        "CreationTime": config.created,
        "InvokeMode": config.invoke_mode,
    }
    if modified:
        shape["LastModifiedTime"] = config.modified
    if config.cors is not None:
        shape["Cors"] = _cors_shape(config.cors)
    return shape
