"""Layers through boto3 against a real ``fastinvoke serve``: PublishLayerVersion,
Get/List/Delete, functions created and changed with ``Layers`` ARNs, an ARN mapped with
``--layer ARN=DIR``, Lambda's refusals, and persistence."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from http_server import serving, zip_of

ROLE = "arn:aws:iam::123456789012:role/lambda"
RUNTIME = f"python3.{sys.version_info.minor}"
LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:"
HANDLER = zip_of({"app.py": "import greet\n\ndef handler(event, context):\n"
                            "    return greet.hello()\n"})


def _layer(word: str) -> bytes:
    return zip_of({"python/greet.py": f"def hello():\n    return '{word}'\n"})


def _create(client, name: str, layers: list[str]) -> dict:
    return client.create_function(FunctionName=name, Runtime=RUNTIME, Role=ROLE,
                                  Handler="app.handler", Code={"ZipFile": HANDLER},
                                  Layers=layers)


def _call(client, name: str) -> object:
    answer = client.invoke(FunctionName=name)
    return answer.get("FunctionError"), json.loads(answer["Payload"].read())


def test_published_layers_supply_packages(tmp_path: Path) -> None:
    with serving(tmp_path, template=False) as server:
        client = server.client()
        one = client.publish_layer_version(LayerName="greeting",
                                           Content={"ZipFile": _layer("hi")},
                                           CompatibleRuntimes=[RUNTIME], Description="first")
        assert (one["Version"], one["LayerVersionArn"]) == (1, LAYER + "greeting:1")
        assert one["LayerArn"] == LAYER + "greeting"
        assert one["Content"]["CodeSize"] > 0 and one["Content"]["CodeSha256"]
        two = client.publish_layer_version(LayerName="greeting",
                                           Content={"ZipFile": _layer("hello")})
        assert two["Version"] == 2

        created = _create(client, "greeter", [one["LayerVersionArn"]])
        assert created["Layers"] == [{"Arn": LAYER + "greeting:1",
                                      "CodeSize": one["Content"]["CodeSize"]}]
        assert _call(client, "greeter") == (None, "hi")
        changed = client.update_function_configuration(FunctionName="greeter",
                                                       Layers=[two["LayerVersionArn"]])
        assert [layer["Arn"] for layer in changed["Layers"]] == [LAYER + "greeting:2"]
        assert _call(client, "greeter") == (None, "hello")

        got = client.get_layer_version(LayerName="greeting", VersionNumber=1)
        assert got["Description"] == "first" and got["CompatibleRuntimes"] == [RUNTIME]
        assert client.get_layer_version_by_arn(Arn=LAYER + "greeting:2")["Version"] == 2
        listed = client.list_layer_versions(LayerName="greeting")["LayerVersions"]
        assert [v["Version"] for v in listed] == [2, 1]
        layers = client.list_layers()["Layers"]
        assert [(layer["LayerName"], layer["LatestMatchingVersion"]["Version"])
                for layer in layers] == [("greeting", 2)]
        matching = client.list_layers(CompatibleRuntime=RUNTIME)["Layers"]
        assert [layer["LatestMatchingVersion"]["Version"] for layer in matching] == [1]

        # A layer only AWS has is refused with what to do; nothing is created.
        with pytest.raises(client.exceptions.InvalidParameterValueException,
                           match="does not exist.*--layer ARN=DIR"):
            _create(client, "elsewhere", ["arn:aws:lambda:us-east-1:999999999999:layer:x:1"])
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_function(FunctionName="elsewhere")

        # Deleting a version a function uses keeps the function running, as Lambda does.
        client.delete_layer_version(LayerName="greeting", VersionNumber=2)
        client.delete_layer_version(LayerName="greeting", VersionNumber=2)  # no error again
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_layer_version(LayerName="greeting", VersionNumber=2)
        assert _call(client, "greeter") == (None, "hello")
        # Numbers are not used twice.
        assert client.publish_layer_version(
            LayerName="greeting", Content={"ZipFile": _layer("hey")})["Version"] == 3
    with serving(tmp_path, template=False) as server:
        client = server.client()
        assert [v["Version"] for v in client.list_layer_versions(
            LayerName="greeting")["LayerVersions"]] == [3, 1]
        assert _call(client, "greeter") == (None, "hello")


def test_a_layer_arn_mapped_to_a_directory(tmp_path: Path) -> None:
    content = tmp_path / "greeting" / "python"
    content.mkdir(parents=True)
    (content / "greet.py").write_text("def hello():\n    return 'local'\n")
    arn = "arn:aws:lambda:eu-west-1:111122223333:layer:shared:4"
    with serving(tmp_path, "--layer", f"{arn}={tmp_path / 'greeting'}",
                 template=False) as server:
        client = server.client()
        created = _create(client, "mapped", [arn])
        assert created["Layers"] == [{"Arn": arn}]
        assert _call(client, "mapped") == (None, "local")
