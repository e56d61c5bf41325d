"""``--auth sigv4``: requests signed by botocore's own signer with a configured key pass;
others get AWS's 403 errors.  Binding beyond loopback needs it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError
from http_server import ROOT, Server, serving

KEYS = {"AKIDFASTINVOKE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("sigv4")
    keys = directory / "keys.json"
    keys.write_text(json.dumps(KEYS))
    with serving(directory, "--auth", "sigv4", "--keys", str(keys)) as server:
        yield server


def code_of(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_signed_requests_are_served(signed_server: Server) -> None:
    client = signed_server.client(*next(iter(KEYS.items())))
    arn = "arn:aws:lambda:us-east-1:123456789012:function:echo"
    # An encoded ARN and a query string: both are part of what is signed.
    answer = client.invoke(FunctionName=arn, Qualifier="$LATEST", Payload=b'{"k": "v w"}')
    assert answer["Payload"].read() == b'{"k": "v w"}'
    assert client.get_function(FunctionName="echo")["Configuration"]["FunctionName"] == "echo"
    assert list(client.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 2}))
    client.close()


@pytest.mark.parametrize(("key", "secret", "config", "code"), [
    ("AKIDFASTINVOKE", "not-the-secret", {}, "InvalidSignatureException"),
    ("AKIDUNKNOWN", "whatever", {}, "UnrecognizedClientException"),
    ("AKIDFASTINVOKE", "x", {"signature_version": UNSIGNED},
     "MissingAuthenticationTokenException"),
])
def test_bad_or_missing_signatures_are_refused(signed_server: Server, key: str, secret: str,
                                               config: dict[str, Any], code: str) -> None:
    client = signed_server.client(key, secret, **config)
    assert code_of(lambda: client.invoke(FunctionName="echo", Payload=b"{}")) == (code, 403)
    assert code_of(lambda: client.list_functions()) == (code, 403)
    client.close()


def test_health_and_metrics_stay_open(signed_server: Server) -> None:
    with urllib.request.urlopen(signed_server.url + "/metrics") as answer:
        assert b"fastinvoke_invocations_total" in answer.read()
    with urllib.request.urlopen(signed_server.url + "/healthz") as answer:
        assert json.loads(answer.read())["status"] == "ok"


@pytest.mark.parametrize("arguments", [["--host", "0.0.0.0"], ["--auth", "sigv4"]])
def test_serving_beyond_loopback_needs_authentication(tmp_path: Path,
                                                      arguments: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "serve", "--port", "0",
                           "--state-dir", str(tmp_path), *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--auth sigv4" in done.stderr and "--keys" in done.stderr
