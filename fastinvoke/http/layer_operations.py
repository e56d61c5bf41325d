"""The Lambda API's layers (2018-10-31): PublishLayerVersion, GetLayerVersion,
GetLayerVersionByArn, ListLayers, ListLayerVersions and DeleteLayerVersion, as botocore's
model defines them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from ..errors import InvalidParameterValueException
from . import bodies
from .code import decode_zip
from .layer_store import LayerStore, LayerVersion
from .messages import Request, Response, json_response
from .operation import ApiContext
from .paging import listing, page


class LayerContent(msgspec.Struct, rename={"zip_file": "ZipFile", "s3_bucket": "S3Bucket"}):
    zip_file: str | None = None
    s3_bucket: str | None = None


class PublishLayerVersion(msgspec.Struct, rename="pascal"):
    content: LayerContent
    description: str = ""
    compatible_runtimes: list[str] = []
    compatible_architectures: list[str] = []
    license_info: str | None = None


async def publish_layer_version(api: ApiContext, request: Request, layer: str | None,
                                query: dict[str, str]) -> Response:
    assert layer is not None  # the route has the layer's segment
    body = bodies.decode(request.body, PublishLayerVersion)
    if body.content.zip_file is None:
        raise InvalidParameterValueException(
            "fastinvoke takes a layer's content as Content.ZipFile only (no S3): zip the "
            "layer's directory (python/, nodejs/...) and pass its bytes as ZipFile")
    package = decode_zip(body.content.zip_file)
    published = await asyncio.to_thread(
        api.layers.publish, layer, package, body.description, body.compatible_runtimes,
        body.compatible_architectures, body.license_info)
    return json_response(_version(api.layers, published, content=True), 201)


async def get_layer_version(api: ApiContext, request: Request, layer: str | None,
                            query: dict[str, str]) -> Response:
    assert layer is not None
    found = api.layers.get(layer, query["VersionNumber"])
    return json_response(_version(api.layers, found, content=True))


async def list_layers_or_get_by_arn(api: ApiContext, request: Request, layer: str | None,
                                    query: dict[str, str]) -> Response:
    """``GET /2018-10-31/layers``: ListLayers, or GetLayerVersionByArn with
    ``find=LayerVersion``."""
    if query.get("find") == "LayerVersion":
        found = api.layers.by_arn(query.get("Arn", ""))
        return json_response(_version(api.layers, found, content=True))
    latest = api.layers.latest(query.get("CompatibleRuntime"),
                               query.get("CompatibleArchitecture"))
    chosen, marker = page(latest, lambda found: found.name, query)
    return json_response(listing("Layers", [
        {"LayerName": found.name, "LayerArn": api.layers.arn(found.name),
         "LatestMatchingVersion": _version(api.layers, found)} for found in chosen], marker))


async def list_layer_versions(api: ApiContext, request: Request, layer: str | None,
                              query: dict[str, str]) -> Response:
    assert layer is not None
    versions = [found for found in api.layers.versions(layer)
                if query.get("CompatibleRuntime") in (None, *found.compatible_runtimes)
                and query.get("CompatibleArchitecture") in (None,
                                                            *found.compatible_architectures)]
    chosen, marker = page(versions, lambda found: f"{-found.version:+011d}", query)
    return json_response(listing("LayerVersions", [
        _version(api.layers, found) for found in chosen], marker))


async def delete_layer_version(api: ApiContext, request: Request, layer: str | None,
                               query: dict[str, str]) -> Response:
    assert layer is not None
    in_use = [directory for config in api.invoker.list_functions(all_versions=True)
              for directory in config.layers]
    await asyncio.to_thread(api.layers.delete, layer, query["VersionNumber"], in_use)
    return Response(204)


def _version(store: LayerStore, layer: LayerVersion, content: bool = False) -> dict[str, Any]:
    document: dict[str, Any] = {
        "LayerVersionArn": store.arn(layer.name, layer.version), "Version": layer.version,
        "Description": layer.description, "CreatedDate": layer.created,
        "CompatibleRuntimes": layer.compatible_runtimes,
        "CompatibleArchitectures": layer.compatible_architectures}
    if layer.license_info is not None:
        document["LicenseInfo"] = layer.license_info
    if content:
        document["LayerArn"] = store.arn(layer.name)
        document["Content"] = {"Location": f"file://{store.directory_of(layer)}",
                               "CodeSha256": layer.code_sha256, "CodeSize": layer.code_size}
    return document
