"""The management operations through boto3: create from a zip, read, list, update, delete,
concurrency, the account; waiters; errors botocore parses (docs/lambda-behaviour.md,
"Function management API")."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import wait_until
from http_server import Server, zip_of

RUNTIME = f"python3.{sys.version_info.minor}"
ROLE = "arn:aws:iam::123456789012:role/test"
SOURCE = """import os

def handler(event, context):
    return {"v": VERSION, "env": os.environ.get("MARK")}

VERSION = 1
"""
_names = itertools.count()


def create(client: Any, version: int = 1, **extra: Any) -> tuple[str, dict[str, Any]]:
    name = extra.pop("FunctionName", f"made-{next(_names)}")
    package = zip_of({"app.py": SOURCE.replace("VERSION = 1", f"VERSION = {version}")})
    members = {"Runtime": RUNTIME, "Role": ROLE, "Handler": "app.handler", **extra}
    answer = client.create_function(FunctionName=name, Code={"ZipFile": package}, **members)
    return name, answer


def call(client: Any, name: str) -> Any:
    return json.loads(client.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = raised.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"])


def test_create_runs_the_uploaded_package(client: Any) -> None:
    package = zip_of({"app.py": SOURCE})
    name, answer = create(client, MemorySize=256, Timeout=7,
                          Environment={"Variables": {"MARK": "m"}}, Description="d")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert answer["FunctionArn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    assert answer["CodeSha256"] == base64.b64encode(hashlib.sha256(package).digest()).decode()
    assert answer["CodeSize"] == len(package)
    assert (answer["MemorySize"], answer["Timeout"], answer["Description"]) == (256, 7, "d")
    assert answer["Environment"] == {"Variables": {"MARK": "m"}}
    assert answer["State"] == "Active" and answer["LastUpdateStatus"] == "Successful"
    assert answer["Version"] == "$LATEST" and answer["PackageType"] == "Zip"
    client.get_waiter("function_active_v2").wait(FunctionName=name)
    assert call(client, name) == {"v": 1, "env": "m"}


def test_get_and_get_configuration(client: Any) -> None:
    name, created = create(client)
    got = client.get_function(FunctionName=name)
    assert got["Configuration"]["RevisionId"] == created["RevisionId"]
    assert got["Configuration"]["LastModified"].endswith("+0000")
    assert got["Code"]["Location"]
    assert "Concurrency" not in got
    config = client.get_function_configuration(FunctionName=name)
    assert config["CodeSha256"] == created["CodeSha256"] and config["State"] == "Active"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName="never-made")


def test_list_functions_pages(client: Any) -> None:
    made = {create(client)[0] for _ in range(3)}
    paginator = client.get_paginator("list_functions")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 2}))
    assert all(len(page["Functions"]) <= 2 for page in pages) and len(pages) >= 2
    listed = [f["FunctionName"] for page in pages for f in page["Functions"]]
    assert len(listed) == len(set(listed)) and made <= set(listed) and "echo" in listed
    assert "State" not in pages[0]["Functions"][0]  # list entries are a subset
    with pytest.raises(ClientError) as raised:
        client.list_functions(Marker="%%%")
    assert error_of(raised)[:2] == ("InvalidParameterValueException", 400)


def test_update_configuration_applies_to_later_invocations(client: Any) -> None:
    name, created = create(client, Environment={"Variables": {"MARK": "a"}})
    assert call(client, name)["env"] == "a"
    updated = client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"MARK": "b"}}, MemorySize=512,
        RevisionId=created["RevisionId"])
    assert updated["MemorySize"] == 512 and updated["RevisionId"] != created["RevisionId"]
    client.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert call(client, name)["env"] == "b"
    with pytest.raises(ClientError) as raised:  # the old revision no longer applies
        client.update_function_configuration(FunctionName=name, Timeout=5,
                                             RevisionId=created["RevisionId"])
    assert error_of(raised)[:2] == ("PreconditionFailedException", 412)
    with pytest.raises(ClientError) as raised:
        client.update_function_configuration(FunctionName=name, Timeout=901)
    assert error_of(raised) == ("ValidationException", 400, (
        "1 validation error detected: Value '901' at 'timeout' failed to satisfy constraint: "
        "Member must have value less than or equal to 900"))


def test_update_code_runs_the_new_package(client: Any) -> None:
    name, created = create(client)
    assert call(client, name)["v"] == 1
    package = zip_of({"app.py": SOURCE.replace("VERSION = 1", "VERSION = 2")})
    dry = client.update_function_code(FunctionName=name, ZipFile=package, DryRun=True)
    assert dry["CodeSha256"] != created["CodeSha256"] and call(client, name)["v"] == 1
    updated = client.update_function_code(FunctionName=name, ZipFile=package)
    assert updated["CodeSha256"] == base64.b64encode(hashlib.sha256(package).digest()).decode()
    client.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert call(client, name)["v"] == 2
    with pytest.raises(ClientError) as raised:
        client.update_function_code(FunctionName=name, ZipFile=b"not a zip")
    assert error_of(raised) == ("InvalidParameterValueException", 400, (
        "Could not unzip uploaded file. Please check your file, then try to upload again."))
    assert call(client, name)["v"] == 2


def test_delete_function(client: Any) -> None:
    name, _ = create(client)
    with pytest.raises(ClientError) as raised:
        client.delete_function(FunctionName=name, Qualifier="$LATEST")
    assert error_of(raised)[:2] == ("InvalidParameterValueException", 400)
    assert client.delete_function(FunctionName=name)["StatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_function(FunctionName=name)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=name, Payload=b"{}")


@pytest.mark.parametrize(("change", "code", "status", "message"), [
    ({"MemorySize": 20000}, "ValidationException", 400,
     "1 validation error detected: Value '20000' at 'memorySize' failed to satisfy constraint: "
     "Member must have value less than or equal to 10240"),
    ({"Role": "r1"}, "ValidationException", 400, None),
    ({"Runtime": "nodejs99.x"}, "InvalidParameterValueException", 400, None),
    ({"FunctionName": "echo"}, "ResourceConflictException", 409,
     "Function already exist: echo"),
    ({"FunctionName": "../escape"}, "ValidationException", 400, None),
    ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "InvalidParameterValueException",
     400, None),
])
def test_create_refuses_what_lambda_refuses(client: Any, change: dict[str, Any], code: str,
                                            status: int, message: str | None) -> None:
    with pytest.raises(ClientError) as raised:
        create(client, **change)
    assert error_of(raised)[:2] == (code, status)
    if message is not None:
        assert error_of(raised)[2] == message


def test_a_bad_package_is_refused_and_leaves_nothing(client: Any, lambda_server: Server,
                                                     tmp_path: Path) -> None:
    for package in (b"PK\x03\x04 truncated", zip_of({"../evil.py": "x = 1"})):
        with pytest.raises(ClientError) as raised:
            client.create_function(FunctionName="bad-zip", Runtime=RUNTIME, Role=ROLE,
                                   Handler="app.handler", Code={"ZipFile": package})
        assert error_of(raised)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName="bad-zip")


def test_concurrency_and_account_settings(client: Any) -> None:
    name, _ = create(client)
    before = client.get_account_settings()
    assert before["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert client.get_function_concurrency(FunctionName=name).get(
        "ReservedConcurrentExecutions") is None
    put = client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    assert put["ReservedConcurrentExecutions"] == 5
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    assert client.get_function(FunctionName=name)["Concurrency"] == {
        "ReservedConcurrentExecutions": 5}
    after = client.get_account_settings()
    assert after["AccountLimit"]["UnreservedConcurrentExecutions"] == \
        before["AccountLimit"]["UnreservedConcurrentExecutions"] - 5
    assert after["AccountUsage"]["FunctionCount"] == before["AccountUsage"]["FunctionCount"]
    with pytest.raises(ClientError) as raised:
        client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=901)
    assert error_of(raised)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as raised:
        client.put_function_concurrency(FunctionName=name + ":1", ReservedConcurrentExecutions=1)
    assert "Aliases and versions do not support this operation" in error_of(raised)[2]
    deleted = client.delete_function_concurrency(FunctionName=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(FunctionName=name)


def test_functions_created_over_http_survive_a_restart(tmp_path: Path) -> None:
    server = Server(tmp_path / "state")
    try:
        client = server.client()
        name, _ = create(client, Environment={"Variables": {"MARK": "first"}})
        created = client.update_function_configuration(
            FunctionName=name, Environment={"Variables": {"MARK": "kept"}})
        client.close()
        assert server.stop()[0] == 0
        server = Server(tmp_path / "state")
        client = server.client()
        config = client.get_function_configuration(FunctionName=name)
        assert config["CodeSha256"] == created["CodeSha256"]
        assert config["RevisionId"] == created["RevisionId"]
        assert call(client, name) == {"v": 1, "env": "kept"}
        client.close()
        assert server.stop()[0] == 0
    finally:
        server.kill()


def test_event_invoke_config_put_get_update_delete(client: Any) -> None:
    name, _ = create(client)
    queue = "arn:aws:sqs:us-east-1:123456789012:failures"
    put = client.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, MaximumEventAgeInSeconds=3600,
        DestinationConfig={"OnFailure": {"Destination": queue}})
    assert put["FunctionArn"].endswith(f":function:{name}:$LATEST")
    assert (put["MaximumRetryAttempts"], put["MaximumEventAgeInSeconds"]) == (0, 3600)
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": queue}}
    assert put["LastModified"].year >= 2024  # epoch seconds, parsed by botocore
    updated = client.update_function_event_invoke_config(FunctionName=name,
                                                         MaximumRetryAttempts=1)
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (1, 3600)
    got = client.get_function_event_invoke_config(FunctionName=name)
    assert got["DestinationConfig"]["OnFailure"] == {"Destination": queue}
    assert client.delete_function_event_invoke_config(
        FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.get_function_event_invoke_config(FunctionName=name)
    assert error_of(raised)[2].endswith(f":function:{name}:$LATEST doesn't have an "
                                        "EventInvokeConfig")
    with pytest.raises(ClientError) as raised:
        client.put_function_event_invoke_config(FunctionName=name)
    assert error_of(raised) == ("InvalidParameterValueException", 400,
                                "You must specify at least one of error handling or "
                                "destination setting.")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.put_function_event_invoke_config(FunctionName="never-made",
                                                MaximumRetryAttempts=1)


def test_a_failed_event_goes_to_its_on_failure_destination(client: Any,
                                                           tmp_path: Path) -> None:
    failures = tmp_path / "failures.jsonl"
    client.put_function_event_invoke_config(
        FunctionName="raises", MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": f"file://{failures}"}})
    try:
        event = client.invoke(FunctionName="raises", InvocationType="Event", Payload=b'{"n": 5}')
        assert event["StatusCode"] == 202
        record = json.loads(wait_until(lambda: failures.exists() and failures.read_text()))
        assert record["requestPayload"] == {"n": 5}
        assert record["requestContext"]["requestId"] == event["ResponseMetadata"]["RequestId"]
        assert record["responsePayload"]["errorType"] == "ValueError"
    finally:
        client.delete_function_event_invoke_config(FunctionName="raises")
