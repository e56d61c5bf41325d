"""A function's ``/tmp`` size, Lambda's ``EphemeralStorage.Size`` (512-10,240 MB, default
512): ``FunctionConfig.ephemeral_storage_mb``, SAM's ``EphemeralStorage`` (tests/test_sam.py)
and the API's, round-tripped through boto3 and kept across restarts.  Values out of range
are refused as Lambda refuses them.  (Enforcing the size is not done here.)"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import FUNCTIONS
from http_server import Server, serving, zip_of

from fastinvoke import FunctionConfig
from fastinvoke.errors import ValidationException

RUNTIME = f"python3.{sys.version_info.minor}"
ROLE = "arn:aws:iam::123456789012:role/test"
SOURCE = "def handler(event, context):\n    return event\n"
_names = itertools.count()


def refused(size: object, bound: str) -> str:
    return (f"1 validation error detected: Value '{size}' at 'ephemeralStorage.size' failed "
            f"to satisfy constraint: Member must {bound}")


def test_the_default_is_512_and_the_range_is_lambdas() -> None:
    config = FunctionConfig(name="f", handler="echo.handler", code=FUNCTIONS)
    assert config.ephemeral_storage_mb == 512
    for size in (512, 10_240):
        FunctionConfig(name="f", handler="echo.handler", code=FUNCTIONS,
                       ephemeral_storage_mb=size).validate()
    for size, bound in ((511, "have value greater than or equal to 512"),
                        (10_241, "have value less than or equal to 10240"),
                        ("1024", "be an integer"), (True, "be an integer")):
        with pytest.raises(ValidationException) as info:
            FunctionConfig(name="f", handler="echo.handler", code=FUNCTIONS,
                           ephemeral_storage_mb=size).validate()  # type: ignore[arg-type]
        assert str(info.value) == refused(size, bound)


@pytest.fixture(scope="module")
def client(lambda_server: Server) -> Iterator[Any]:
    client = lambda_server.client()
    yield client
    client.close()


def create(client: Any, **extra: Any) -> tuple[str, dict[str, Any]]:
    name = f"scratch-{next(_names)}"
    answer = client.create_function(FunctionName=name, Runtime=RUNTIME, Role=ROLE,
                                    Handler="app.handler", Code={"ZipFile": zip_of(
                                        {"app.py": SOURCE})}, **extra)
    return name, answer


def sizes(client: Any, name: str) -> set[int]:
    """The size each read operation reports."""
    listed = [f for page in client.get_paginator("list_functions").paginate()
              for f in page["Functions"] if f["FunctionName"] == name]
    return {client.get_function(FunctionName=name)["Configuration"]["EphemeralStorage"]["Size"],
            client.get_function_configuration(FunctionName=name)["EphemeralStorage"]["Size"],
            *(f["EphemeralStorage"]["Size"] for f in listed)}


def error_of(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"])


def test_create_and_update_round_trip_through_boto3(client: Any) -> None:
    name, answer = create(client, EphemeralStorage={"Size": 2048})
    assert answer["EphemeralStorage"] == {"Size": 2048}
    assert sizes(client, name) == {2048}
    updated = client.update_function_configuration(FunctionName=name,
                                                   EphemeralStorage={"Size": 10_240})
    assert updated["EphemeralStorage"] == {"Size": 10_240}
    assert sizes(client, name) == {10_240}
    # An update that does not name it keeps it.
    assert client.update_function_configuration(
        FunctionName=name, Timeout=9)["EphemeralStorage"] == {"Size": 10_240}
    assert client.invoke(FunctionName=name, Payload=b'{"k": 1}')["Payload"].read() == b'{"k": 1}'
    plain, answer = create(client)
    assert answer["EphemeralStorage"] == {"Size": 512}
    assert sizes(client, plain) == {512}


def test_out_of_range_sizes_are_refused_as_lambda_refuses_them(client: Any,
                                                               lambda_server: Server) -> None:
    # botocore checks the minimum itself, not the maximum: the server must.
    assert error_of(lambda: create(client, EphemeralStorage={"Size": 10_241})) == (
        "ValidationException", 400,
        refused(10_241, "have value less than or equal to 10240"))
    name, _ = create(client, EphemeralStorage={"Size": 1024})
    assert error_of(lambda: client.update_function_configuration(
        FunctionName=name, EphemeralStorage={"Size": 20_000})) == (
        "ValidationException", 400, refused(20_000, "have value less than or equal to 10240"))
    assert sizes(client, name) == {1024}  # unchanged
    unchecked = lambda_server.client(parameter_validation=False)
    assert error_of(lambda: unchecked.update_function_configuration(
        FunctionName=name, EphemeralStorage={"Size": 100})) == (
        "ValidationException", 400, refused(100, "have value greater than or equal to 512"))
    unchecked.close()


def test_sizes_from_a_template_and_the_api_survive_a_restart(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        f"Globals:\n  Function:\n    Runtime: {RUNTIME}\n    EphemeralStorage:\n"
        f"      Size: 3072\nResources:\n  big:\n    Type: AWS::Serverless::Function\n"
        f"    Properties:\n      FunctionName: big\n      Handler: echo.handler\n"
        f"      CodeUri: {FUNCTIONS}\n")
    state = tmp_path / "state"
    first = Server(state, template=template)
    try:
        client = first.client()
        assert sizes(client, "big") == {3072}
        created, _ = create(client, EphemeralStorage={"Size": 6144})
        client.close()
    finally:
        status, err = first.stop()
    assert status == 0, err
    # The same state dir, with the tests' template: "big" now comes from the state dir.
    with serving(tmp_path) as again:
        client = again.client()
        assert sizes(client, "big") == {3072}
        assert sizes(client, created) == {6144}
        client.close()
