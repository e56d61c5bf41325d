"""``--auth sigv4``: the credential scope must name the server's region (``--region``,
default us-east-1) and the service ``lambda``; otherwise the 403
``InvalidSignatureException`` with the message AWS endpoints give."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from http_server import ROOT, Server, serving

KEY, SECRET = "AKIDSCOPE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def signed_serving(directory: Path, *args: str) -> Any:
    keys = directory / "keys.json"
    keys.write_text(json.dumps({KEY: SECRET}))
    return serving(directory, "--auth", "sigv4", "--keys", str(keys), *args)


@pytest.fixture(scope="module")
def default_region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with signed_serving(tmp_path_factory.mktemp("scope")) as server:
        yield server


@pytest.fixture(scope="module")
def eu_west_1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with signed_serving(tmp_path_factory.mktemp("scope-eu"), "--region", "eu-west-1") as server:
        yield server


def client(server: Server, region: str, key: str = KEY) -> Any:
    return boto3.client("lambda", endpoint_url=server.url, region_name=region,
                        aws_access_key_id=key, aws_secret_access_key=SECRET,
                        config=Config(retries={"max_attempts": 0}, read_timeout=60))


def refusal(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"])


def signed_request(server: Server, service: str, region: str) -> tuple[int, dict[str, str], Any]:
    """ListFunctions signed by botocore's SigV4 signer for ``service`` in ``region``, sent
    as is: (status, headers, JSON body)."""
    request = AWSRequest(method="GET", url=server.url + "/2015-03-31/functions/")
    SigV4Auth(Credentials(KEY, SECRET), service, region).add_auth(request)
    prepared = request.prepare()
    sent = urllib.request.Request(prepared.url, headers=dict(prepared.headers), method="GET")
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_a_client_of_another_region_is_refused_as_aws_refuses_it(default_region: Server) -> None:
    elsewhere = client(default_region, "eu-west-1")
    expected = ("InvalidSignatureException", 403,
                "Credential should be scoped to a valid region, not 'eu-west-1'. ")
    assert refusal(lambda: elsewhere.invoke(FunctionName="echo", Payload=b"{}")) == expected
    assert refusal(lambda: elsewhere.list_functions()) == expected
    # The scope is checked before the key: an unknown key gets the same answer.
    stranger = client(default_region, "eu-west-1", key="AKIDUNKNOWN")
    assert refusal(lambda: stranger.list_functions()) == expected
    here = client(default_region, "us-east-1")
    assert here.invoke(FunctionName="echo", Payload=b'{"a": 1}')["Payload"].read() == b'{"a": 1}'
    for each in (elsewhere, stranger, here):
        each.close()


def test_a_request_signed_for_another_service_is_refused(default_region: Server) -> None:
    status, headers, body = signed_request(default_region, "sqs", "us-east-1")
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert body["message"] == "Credential should be scoped to correct service: 'lambda'. "
    # The same request signed for lambda passes: only the scope's service differed.
    status, _, body = signed_request(default_region, "lambda", "us-east-1")
    assert status == 200
    assert {f["FunctionName"] for f in body["Functions"]} >= {"echo", "sleeper"}


def test_region_flag_sets_the_scope_and_the_arns(eu_west_1: Server) -> None:
    here = client(eu_west_1, "eu-west-1")
    assert here.invoke(FunctionName="echo", Payload=b"7")["Payload"].read() == b"7"
    arn = here.get_function(FunctionName="echo")["Configuration"]["FunctionArn"]
    assert arn == "arn:aws:lambda:eu-west-1:123456789012:function:echo"
    # A full ARN names its region: this server's works.
    assert here.invoke(FunctionName=arn, Payload=b"8")["Payload"].read() == b"8"
    default = client(eu_west_1, "us-east-1")
    assert refusal(lambda: default.invoke(FunctionName="echo", Payload=b"{}")) == (
        "InvalidSignatureException", 403,
        "Credential should be scoped to a valid region, not 'us-east-1'. ")
    status, headers, body = signed_request(eu_west_1, "execute-api", "eu-west-1")
    assert (status, headers["x-amzn-ErrorType"], body["message"]) == (
        403, "InvalidSignatureException",
        "Credential should be scoped to correct service: 'lambda'. ")
    here.close()
    default.close()


@pytest.mark.parametrize("region", ["", "EU-WEST-1", "eu west 1", "eu_west_1", "eu-west-1-"])
def test_a_region_that_is_no_region_name_is_refused(tmp_path: Path, region: str) -> None:
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "serve", "--port", "0",
                           "--state-dir", str(tmp_path / "state"), "--region", region],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == (f"fastinvoke: --region {region}: give an AWS region name, such as "
                           "us-east-1\n")
    assert not (tmp_path / "state").exists()
