"""Function URLs through a real ``fastinvoke serve``: the configuration operations over
boto3, requests to ``http://<url-id>.lambda-url.<region>.localhost:<port>/`` (sent to
127.0.0.1 with that ``Host``) as payload 2.0 events, AWS_IAM URLs checked with SigV4,
CORS, a SAM template's ``FunctionUrlConfig``, and a URL that outlives a restart."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from helpers import function_resource, read_line
from http_server import Server, serving

URL = re.compile(r"^http://([0-9a-f]{32})\.lambda-url\.us-east-1\.localhost:(\d+)/$")
KEYS = {"AKIDTEST": "secret"}


def call(url: str, method: str = "GET", path: str = "/", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A request to the function URL ``url``: to 127.0.0.1, with its host in ``Host``."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
    try:
        connection.request(method, path, body, {"Host": parts.netloc, **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        connection.close()


def signed(url: str, path: str, key: str, secret: str) -> dict[str, str]:
    """The headers of a GET of ``path`` on ``url`` signed as an SDK signs it."""
    request = AWSRequest("GET", url.rstrip("/") + path, headers={"Host": urlsplit(url).netloc})
    SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_the_configuration_operations(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        client = server.client()
        made = client.create_function_url_config(FunctionName="echo", AuthType="NONE")
        assert made["ResponseMetadata"]["HTTPStatusCode"] == 201
        match = URL.match(made["FunctionUrl"])
        assert match is not None and int(match[2]) == server.port, made["FunctionUrl"]
        assert made["FunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
        assert (made["AuthType"], made["InvokeMode"]) == ("NONE", "BUFFERED")
        with pytest.raises(client.exceptions.ResourceConflictException):
            client.create_function_url_config(FunctionName="echo", AuthType="NONE")
        got = client.get_function_url_config(FunctionName="echo")
        assert got["FunctionUrl"] == made["FunctionUrl"] and "LastModifiedTime" in got
        changed = client.update_function_url_config(
            FunctionName="echo", Cors={"AllowOrigins": ["https://example.com"], "MaxAge": 60})
        assert changed["Cors"]["AllowOrigins"] == ["https://example.com"]
        assert changed["Cors"]["MaxAge"] == 60 and changed["FunctionUrl"] == made["FunctionUrl"]
        listed = client.list_function_url_configs(FunctionName="echo")["FunctionUrlConfigs"]
        assert [config["FunctionUrl"] for config in listed] == [made["FunctionUrl"]]
        with pytest.raises(botocore.exceptions.ClientError, match="authType"):
            client.create_function_url_config(FunctionName="sleeper", AuthType="OPEN")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.create_function_url_config(FunctionName="nobody", AuthType="NONE")
        client.delete_function_url_config(FunctionName="echo")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_function_url_config(FunctionName="echo")
        assert call(made["FunctionUrl"])[0] == 404  # no longer a URL: the Lambda API's 404
        client.close()


def test_a_request_becomes_a_payload_2_0_event(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        client = server.client()
        url = client.create_function_url_config(FunctionName="echo", AuthType="NONE")[
            "FunctionUrl"]
        url_id = URL.match(url)[1]
        status, headers, body = call(url, "POST", "/some/path?x=1&x=2", b'{"k": 1}',
                                     {"Content-Type": "application/json", "Cookie": "a=1"})
        assert status == 200 and headers["Content-Type"] == "application/json"
        event = json.loads(body)  # echo returns its event: sent as it is (no statusCode)
        assert (event["version"], event["routeKey"]) == ("2.0", "$default")
        assert (event["rawPath"], event["rawQueryString"]) == ("/some/path", "x=1&x=2")
        assert event["queryStringParameters"] == {"x": "1,2"}
        assert event["cookies"] == ["a=1"]
        assert (event["body"], event["isBase64Encoded"]) == ('{"k": 1}', False)
        context = event["requestContext"]
        assert context["domainName"] == f"{url_id}.lambda-url.us-east-1.on.aws"
        assert (context["apiId"], context["domainPrefix"]) == (url_id, url_id)
        assert context["http"]["method"] == "POST" and "authorizer" not in context
        # Deleting the function deletes its URL.
        client.delete_function(FunctionName="echo")
        assert call(url)[0] == 404
        client.close()


def test_an_aws_iam_url_takes_only_signed_requests(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(KEYS))
    with serving(tmp_path, "--auth", "sigv4", "--keys", str(keys)) as server:
        client = server.client()
        url = client.create_function_url_config(FunctionName="echo", AuthType="AWS_IAM")[
            "FunctionUrl"]
        assert call(url)[0:3:2] == (403, b'{"Message":"Forbidden"}')
        assert call(url, headers=signed(url, "/", "AKIDTEST", "wrong"))[0] == 403
        status, _, body = call(url, path="/me", headers=signed(url, "/me", "AKIDTEST", "secret"))
        assert status == 200, body
        iam = json.loads(body)["requestContext"]["authorizer"]["iam"]
        assert (iam["accessKey"], iam["accountId"]) == ("AKIDTEST", "123456789012")
        # A NONE URL on the same server needs no signature.
        open_url = client.create_function_url_config(FunctionName="sleeper", AuthType="NONE")[
            "FunctionUrl"]
        assert call(open_url)[0] == 200
        client.close()


def test_cors_of_a_url(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        client = server.client()
        url = client.create_function_url_config(
            FunctionName="echo", AuthType="NONE",
            Cors={"AllowOrigins": ["https://example.com"], "AllowMethods": ["GET"],
                  "AllowHeaders": ["x-custom"], "ExposeHeaders": ["x-out"]})["FunctionUrl"]
        status, headers, _ = call(url, "OPTIONS", headers={
            "Origin": "https://example.com", "Access-Control-Request-Method": "GET"})
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == "https://example.com"
        assert headers["Access-Control-Allow-Methods"] == "GET"
        assert headers["Access-Control-Allow-Headers"] == "x-custom"
        status, headers, _ = call(url, headers={"Origin": "https://example.com"})
        assert (status, headers["Access-Control-Expose-Headers"]) == (200, "x-out")
        status, headers, _ = call(url, headers={"Origin": "https://other.example"})
        assert status == 200 and "Access-Control-Allow-Origin" not in headers
        client.close()


def sam_template(directory: Path) -> Path:
    template = directory / "template.yaml"
    template.write_text("Resources:\n" + function_resource("Hello", "hello", "apigw.plain", """\
      FunctionUrlConfig:
        AuthType: NONE
        Cors:
          AllowOrigins: ["*"]
"""))
    return template


def url_line(server: Server) -> str:
    line = read_line(server.process).decode().strip()
    prefix = "fastinvoke: the function URL of hello: "
    assert line.startswith(prefix), line
    return line[len(prefix):]


def test_a_templates_url_is_served_and_kept_across_restarts(tmp_path: Path) -> None:
    template = sam_template(tmp_path)
    urls: list[str] = []
    for _ in range(2):
        server = Server(tmp_path / "state", template=template)
        try:
            urls.append(url_line(server))
            status, headers, body = call(urls[-1], headers={"Origin": "https://a.example"})
            assert (status, json.loads(body)) == (200, {"hello": None})
            assert headers["Access-Control-Allow-Origin"] == "*"
            client = server.client()
            config: dict[str, Any] = client.get_function_url_config(FunctionName="hello")
            assert config["FunctionUrl"] == urls[-1] and config["AuthType"] == "NONE"
            client.close()
        finally:
            code, err = server.stop()
        assert code == 0, err
    assert URL.match(urls[0])[1] == URL.match(urls[1])[1]  # the same url id
