"""API Gateway from a SAM template: ``fastinvoke serve --template`` serves the template's
Api and HttpApi routes on the API port, through a real server and a real HTTP client:
the events as API Gateway builds them (payload 1.0 and 2.0), responses converted as it
converts them, its own error answers, CORS, and the two kinds of real SAM application
(copies written for these tests under tests/apps)."""

from __future__ import annotations

import base64
import http.client
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import FUNCTIONS, read_line
from http_server import Server

from fastinvoke.apigw.routes import HTTP, REST, Api, Route, RouteTable
from fastinvoke.sam import load_template

APPS = Path(__file__).resolve().parent / "apps"
API_READY = re.compile(rb"^fastinvoke: serving (\d+) API routes on http://([^:]+):(\d+)")
PYTHON = f"python3.{sys.version_info.minor}"

TEMPLATE = f"""\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: {PYTHON}
    CodeUri: {FUNCTIONS}
    Timeout: 30
Resources:
  RestApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: dev
      Variables:
        color: blue
      BinaryMediaTypes: [image~1png]
      Cors: "'*'"
      Auth:
        DefaultAuthorizer: Cognito
        Authorizers:
          Cognito:
            UserPoolArn: arn:aws:cognito-idp:us-east-1:123456789012:userpool/x
  HttpApi:
    Type: AWS::Serverless::HttpApi
    Properties:
      CorsConfiguration:
        AllowOrigins: [https://example.com]
        AllowMethods: [GET, POST]
        AllowHeaders: [content-type]
        ExposeHeaders: [x-echo]
        MaxAge: 600
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: echo
      Handler: apigw.echo
      Events:
        Item:
          Type: Api
          Properties: {{RestApiId: !Ref RestApi, Path: "/items/{{id}}", Method: get}}
        Files:
          Type: Api
          Properties: {{RestApiId: !Ref RestApi, Path: "/files/{{proxy+}}", Method: any}}
        Upload:
          Type: Api
          Properties: {{RestApiId: !Ref RestApi, Path: /upload, Method: post}}
        HttpEcho:
          Type: HttpApi
          Properties: {{ApiId: !Ref HttpApi, Path: "/echo/{{name}}", Method: get}}
        HttpEchoV1:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Path: /v1
            Method: post
            PayloadFormatVersion: "1.0"
        Bucket:
          Type: S3
          Properties: {{Bucket: !Ref Uploads, Events: s3:ObjectCreated:*}}
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: plain
      Handler: apigw.plain
      Events:
        Hello:
          Type: HttpApi
          Properties: {{ApiId: !Ref HttpApi, Path: "/hello/{{name}}", Method: get}}
        Default:
          Type: HttpApi
          Properties: {{ApiId: !Ref HttpApi}}
  Cookies:
    Type: AWS::Serverless::Function
    Properties:
      Handler: apigw.cookies
      Events:
        Made:
          Type: HttpApi
          Properties: {{ApiId: !Ref HttpApi, Path: /cookies, Method: post}}
  Binary:
    Type: AWS::Serverless::Function
    Properties:
      Handler: apigw.binary
      Events:
        Reverse:
          Type: Api
          Properties: {{RestApiId: !Ref RestApi, Path: /reverse, Method: post}}
  Malformed:
    Type: AWS::Serverless::Function
    Properties:
      Handler: apigw.malformed
      Events:
        Bad:
          Type: Api
          Properties: {{RestApiId: !Ref RestApi, Path: /malformed, Method: get}}
  Raises:
    Type: AWS::Serverless::Function
    Properties:
      Handler: apigw.raises
      Events:
        Boom:
          Type: HttpApi
          Properties: {{ApiId: !Ref HttpApi, Path: /raises, Method: get}}
  Hangs:
    Type: AWS::Serverless::Function
    Properties:
      Handler: hang.handler
      Timeout: 1
      Events:
        Slow:
          Type: HttpApi
          Properties: {{ApiId: !Ref HttpApi, Path: /hangs, Method: get}}
  Throttled:
    Type: AWS::Serverless::Function
    Properties:
      Handler: apigw.echo
      ReservedConcurrentExecutions: 0
      Events:
        None:
          Type: HttpApi
          Properties: {{ApiId: !Ref HttpApi, Path: /throttled, Method: get}}
  Java:
    Type: AWS::Serverless::Function
    Properties:
      Handler: example.Handler::handleRequest
      Runtime: java21
      Events:
        Coffee:
          Type: Api
          Properties: {{RestApiId: !Ref RestApi, Path: /java, Method: get}}
  Uploads:
    Type: AWS::S3::Bucket
"""


class Api_:  # noqa: N801 - a test's handle on the API port
    def __init__(self, server: Server) -> None:
        line = read_line(server.process, timeout=30)
        match = API_READY.match(line)
        assert match is not None, line
        self.server = server
        self.routes = [read_line(server.process).decode().strip()
                       for _ in range(int(match[1]))]
        self.host, self.port = match[2].decode(), int(match[3])

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: list[tuple[str, str]] = ()) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.putrequest(method, path)
            for name, value in headers:
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, body = self.request(method, path, **kwargs)
        return status, json.loads(body)

    def event(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The event the echo function got."""
        status, headers, body = self.request(method, path, **kwargs)
        assert status == 200, body
        return json.loads(body)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api_]:
    directory = tmp_path_factory.mktemp("apigw")
    template = directory / "template.yaml"
    template.write_text(TEMPLATE)
    server = Server(directory / "state", "--api-port", "0", template=template)
    try:
        yield Api_(server)
    finally:
        server.stop()


def serve_app(app: Path, tmp_path: Path) -> tuple[Server, Api_]:
    server = Server(tmp_path / "state", "--api-port", "0", template=app / "template.yaml")
    return server, Api_(server)


# -- the two real SAM applications ------------------------------------------------------------

def test_the_sam_hello_world_app_answers_curl_as_api_gateway(tmp_path: Path) -> None:
    server, api = serve_app(APPS / "hello_world", tmp_path)
    try:
        assert api.routes == ["GET     /hello                         -> HelloWorldFunction "
                              "(REST API ServerlessRestApi, payload 1.0)"]
        status, headers, body = api.request("GET", "/hello")
        assert (status, json.loads(body)) == (200, {"message": "hello world"})
        assert headers["Content-Type"] == "application/json"
        # A REST API answers an unknown path, or another method, as an unsigned request.
        for method, path in (("GET", "/nothing"), ("POST", "/hello")):
            assert api.json(method, path) == (403, {"message": "Missing Authentication Token"})
    finally:
        code, err = server.stop()
    assert code == 0, err


def test_the_http_api_app_answers_a_plain_value_as_json(tmp_path: Path) -> None:
    server, api = serve_app(APPS / "http_api", tmp_path)
    try:
        status, headers, body = api.request("GET", "/")
        assert status == 200
        assert json.loads(body) == {"message": "Hello from Lambda!", "path": "/"}
        assert headers["Content-Type"] == "application/json"
        assert re.fullmatch(r"[0-9a-f-]{36}", headers["Apigw-Requestid"])
        assert api.json("GET", "/missing") == (404, {"message": "Not Found"})
    finally:
        server.stop()


# -- payload 1.0 (REST API) ---------------------------------------------------------------------

def test_a_rest_event_is_payload_1_0(api: Api_) -> None:
    event = api.event("GET", "/items/42?a=1&a=2&b=x%20y", headers=[
        ("X-Multi", "1"), ("X-Multi", "2"), ("User-Agent", "tests/1.0")])
    assert event["resource"] == "/items/{id}"
    assert (event["path"], event["httpMethod"]) == ("/items/42", "GET")
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"a": "2", "b": "x y"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"]}
    assert event["headers"]["X-Multi"] == "2"  # names as sent; the last of a repeated one
    assert event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["stageVariables"] == {"color": "blue"}
    assert (event["body"], event["isBase64Encoded"]) == (None, False)
    assert "version" not in event
    context = event["requestContext"]
    assert (context["stage"], context["path"]) == ("dev", "/dev/items/42")
    assert (context["resourcePath"], context["httpMethod"]) == ("/items/{id}", "GET")
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "tests/1.0"
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["requestTime"])
    assert context["accountId"] == "123456789012"


def test_a_greedy_path_takes_the_rest_of_the_path(api: Api_) -> None:
    event = api.event("DELETE", "/files/a/b%20c/d.txt")
    assert event["resource"] == "/files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b c/d.txt"}
    assert event["httpMethod"] == "DELETE"  # ANY


def test_a_binary_media_type_arrives_in_base64_and_leaves_decoded(api: Api_) -> None:
    data = bytes(range(256))
    status, headers, body = api.request("POST", "/reverse", body=data,
                                        headers=[("Content-Type", "image/png")])
    assert status == 200
    assert body == data[::-1]
    assert headers["Content-Type"] == "application/octet-stream"
    event = api.event("POST", "/upload", body=b'{"text": 1}',
                      headers=[("Content-Type", "application/json")])
    assert (event["body"], event["isBase64Encoded"]) == ('{"text": 1}', False)


def test_a_rest_response_keeps_its_headers_of_both_kinds(api: Api_) -> None:
    status, headers, _ = api.request("GET", "/items/1")
    assert status == 200
    assert headers["X-Echo"] == "yes"
    assert headers.get_all("X-Multi") == ["a", "b"]


# -- payload 2.0 (HTTP API) ---------------------------------------------------------------------

def test_an_http_event_is_payload_2_0(api: Api_) -> None:
    event = api.event("GET", "/echo/bob?x=1&x=2&y=", headers=[
        ("Cookie", "a=1; b=2"), ("X-Multi", "1"), ("X-Multi", "2")])
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /echo/{name}"
    assert (event["rawPath"], event["rawQueryString"]) == ("/echo/bob", "x=1&x=2&y=")
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "1,2"
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["pathParameters"] == {"name": "bob"}
    assert event["isBase64Encoded"] is False and "body" not in event
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"]) == ("GET", "/echo/bob", "127.0.0.1")
    assert event["requestContext"]["stage"] == "$default"
    assert event["requestContext"]["routeKey"] == "GET /echo/{name}"


def test_an_http_api_route_may_ask_for_payload_1_0(api: Api_) -> None:
    event = api.event("POST", "/v1", body=b"hi", headers=[("Content-Type", "text/plain")])
    assert event["version"] == "1.0"
    assert (event["resource"], event["body"], event["isBase64Encoded"]) == ("/v1", "hi", False)
    assert event["headers"]["content-type"] == "text/plain"  # an HTTP API lower-cases


def test_an_http_api_passes_a_binary_body_in_base64(api: Api_) -> None:
    event = api.event("GET", "/echo/x", body=b"\x00\xff",
                      headers=[("Content-Type", "application/octet-stream")])
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xff"


def test_a_plain_value_and_the_default_route(api: Api_) -> None:
    status, headers, body = api.request("GET", "/hello/ann")
    assert (status, json.loads(body)) == (200, {"hello": "ann"})
    assert headers["Content-Type"] == "application/json"
    # Whatever no route of the HTTP API takes goes to its $default route.
    assert api.json("PUT", "/any/thing/else") == (200, {"hello": None})


def test_cookies_become_set_cookie_headers(api: Api_) -> None:
    status, headers, body = api.request("POST", "/cookies")
    assert (status, body) == (201, b"made")
    assert headers.get_all("Set-Cookie") == ["first=1", "second=2; Path=/"]
    assert headers["Content-Type"] == "text/plain"


# -- API Gateway's own answers ------------------------------------------------------------------

def test_failures_get_api_gateways_answers(api: Api_) -> None:
    internal = {"message": "Internal server error"}
    assert api.json("GET", "/malformed") == (502, internal)
    assert api.json("GET", "/raises") == (502, internal)
    assert api.json("GET", "/hangs") == (504, {"message": "Endpoint request timed out"})
    assert api.json("GET", "/throttled") == (429, {"message": "Too Many Requests"})
    assert api.json("GET", "/java") == (502, internal)  # a function that cannot run here


def test_a_body_over_api_gateways_limit_is_refused(api: Api_) -> None:
    status, body = api.json("POST", "/upload", body=b"x" * (10 * 1024 * 1024 + 1))
    assert (status, body) == (413, {"message": "Request Entity Too Large"})


def test_the_server_log_says_why_a_route_failed(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    server = Server(tmp_path / "state", "--api-port", "0", template=template)
    api = Api_(server)
    assert api.request("GET", "/malformed")[0] == 502
    assert api.request("GET", "/java")[0] == 502
    code, err = server.stop()
    assert code == 0
    assert "fastinvoke api: GET /malformed -> Malformed (Malformed.Bad): malformed Lambda " \
        "proxy response" in err
    assert "GET /java -> Java (Java.Coffee): ResourceNotFoundException" in err
    assert "note: Java skipped: runtime java21 is not supported" in err
    assert "RestApi: Auth authorizers are not enforced locally" in err


# -- CORS --------------------------------------------------------------------------------------

def test_an_http_api_answers_preflight_for_its_origins(api: Api_) -> None:
    status, headers, body = api.request("OPTIONS", "/echo/x", headers=[
        ("Origin", "https://example.com"), ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "content-type")])
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert headers["Access-Control-Allow-Headers"] == "content-type"
    assert headers["Access-Control-Max-Age"] == "600"
    status, headers, _ = api.request("OPTIONS", "/echo/x", headers=[
        ("Origin", "https://elsewhere.example"), ("Access-Control-Request-Method", "GET")])
    assert status == 204 and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = api.request("GET", "/echo/x", headers=[("Origin", "https://example.com")])
    assert headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert headers["Access-Control-Expose-Headers"] == "x-echo"


def test_a_rest_api_with_cors_answers_preflight(api: Api_) -> None:
    status, headers, _ = api.request("OPTIONS", "/items/3", headers=[
        ("Origin", "https://any.example"), ("Access-Control-Request-Method", "GET")])
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "GET"


# -- the route table ---------------------------------------------------------------------------

def test_the_template_gives_the_route_table(api: Api_) -> None:
    assert "GET     /items/{id}                    -> echo (REST API RestApi, payload 1.0)" \
        in api.routes
    assert "ANY     $default                       -> plain (HTTP API HttpApi, payload 2.0)" \
        in api.routes
    assert len(api.routes) == 14


def test_the_most_specific_route_wins() -> None:
    rest = Api("R", REST, "Prod")
    http = Api("H", HTTP, "$default")
    table = RouteTable([
        Route(rest, "ANY", "/{proxy+}", "greedy", "1.0", "G.e"),
        Route(rest, "GET", "/pets/{id}", "param", "1.0", "P.e"),
        Route(rest, "ANY", "/pets/dog", "any-static", "1.0", "A.e"),
        Route(rest, "GET", "/pets/dog", "static", "1.0", "S.e"),
        Route(http, "ANY", "$default", "default", "2.0", "D.e"),
    ])

    def winner(method: str, path: str) -> tuple[str, dict[str, str]]:
        found = table.match(method, path)
        assert found is not None
        return found[0].function, found[1]

    assert winner("GET", "/pets/dog") == ("static", {})
    assert winner("POST", "/pets/dog") == ("any-static", {})
    assert winner("GET", "/pets/cat") == ("param", {"id": "cat"})
    assert winner("POST", "/pets/cat") == ("greedy", {"proxy": "pets/cat"})
    assert winner("GET", "/") == ("default", {})


def test_api_events_are_read_not_noted_as_ignored() -> None:
    with pytest.warns(RuntimeWarning, match="python3.13 runs on this machine's"):
        template = load_template(APPS / "hello_world" / "template.yaml")
    assert not any("Events" in note for note in template.notes)
    [route] = template.routes
    assert (route.key, route.function, route.api.id, route.api.stage) == (
        "GET /hello", "HelloWorldFunction", "ServerlessRestApi", "Prod")
