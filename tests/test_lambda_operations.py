"""What the Lambda API answers for each kind of request it does not serve: an operation
of Lambda's API that fastinvoke does not implement is named (through boto3, as a user
meets it), with what to use instead where there is a way; a path that is no operation of
Lambda's API keeps the unknown-path answer."""

from __future__ import annotations

import itertools
import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from http_server import Server

import fastinvoke.http
from fastinvoke.http.api import _route as route
from fastinvoke.http.errors import NotImplementedException
from fastinvoke.http.messages import Request


def refusal(call: Any) -> tuple[int, str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    error = info.value.response
    return (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"],
            error["Error"]["Message"])


def test_an_operation_fastinvoke_lacks_is_named(client: Any) -> None:
    assert refusal(lambda: client.get_function_recursion_config(FunctionName="echo")) == (
        501, "NotImplementedException", "fastinvoke does not implement "
        "GetFunctionRecursionConfig; README lists the operations it does")
    status, code, message = refusal(lambda: client.add_permission(
        FunctionName="echo", StatementId="s", Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com"))
    assert (status, code) == (501, "NotImplementedException")
    assert message == ("fastinvoke does not implement AddPermission: resource-based policies "
                       "are not enforced locally: any caller of this server may invoke")
    assert "ListCodeSigningConfigs" in refusal(lambda: client.list_code_signing_configs())[2]
    assert "use Invoke with InvocationType Event" in refusal(
        lambda: client.invoke_async(FunctionName="echo", InvokeArgs=b"{}"))[2]


def test_a_path_of_no_lambda_operation_stays_unknown(lambda_server: Server) -> None:
    request = urllib.request.Request(f"{lambda_server.url}/2015-03-31/nothing/here")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 404
    assert info.value.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert json.loads(info.value.read())["message"].startswith(
        "No Lambda operation has the path /2015-03-31/nothing/here")


README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_table_of_operations_is_true() -> None:
    """Every operation of Lambda's API is in README's table once, as implemented exactly
    when the server routes it."""
    listed: dict[str, bool] = {}
    lines = README.read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("| Area | Implemented |"))
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2:]):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3:
            for implemented, cell in ((True, cells[1]), (False, cells[2])):
                for name in filter(None, (part.strip() for part in cell.split(","))):
                    if name != "—":
                        assert name not in listed, name
                        listed[name] = implemented
    operations = json.loads((Path(fastinvoke.http.__file__).parent /
                             "lambda_operations.json").read_text())["operations"]
    assert set(listed) == set(operations)
    for name, (method, uri) in operations.items():
        path, _, query = uri.partition("?")
        request = Request(method, re.sub(r"\{[^}]+\}", "x", path), query, {}, b"", True)
        try:
            route(request)
            routed = True
        except NotImplementedException:
            routed = False
        assert listed[name] == routed, name
