"""The Lambda API's tag operations (2017-03-31): TagResource, UntagResource and ListTags,
on a function's ARN, as botocore's model defines them."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import msgspec

from ..errors import InvalidParameterValueException
from . import bodies
from .messages import Request, Response, json_response
from .operation import ApiContext


class TagsBody(msgspec.Struct, rename="pascal"):
    tags: dict[str, str] = {}


async def tag_resource(api: ApiContext, request: Request, resource: str | None,
                       query: dict[str, str]) -> Response:
    body = bodies.decode(request.body, TagsBody)
    await asyncio.to_thread(api.invoker.tag_function, _function(api, resource), body.tags)
    return Response(204)


async def untag_resource(api: ApiContext, request: Request, resource: str | None,
                         query: dict[str, str]) -> Response:
    keys = [value for key, value in parse_qsl(request.query) if key == "tagKeys"]
    await asyncio.to_thread(api.invoker.untag_function, _function(api, resource), keys)
    return Response(204)


async def list_tags(api: ApiContext, request: Request, resource: str | None,
                    query: dict[str, str]) -> Response:
    return json_response({"Tags": api.invoker.get_function(_function(api, resource)).tags})


def _function(api: ApiContext, arn: str | None) -> str:
    """The function ``arn`` names: tags take a function's full ARN, in this account and
    region."""
    prefix = api.invoker.function_arn("")
    if not arn or not arn.startswith(prefix) or ":" in arn[len(prefix):]:
        raise InvalidParameterValueException(
            f"The resource {arn!r} is not a function ARN of this server ({prefix}NAME): "
            "tag a function by its FunctionArn")
    return arn[len(prefix):]
