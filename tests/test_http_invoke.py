"""Invoke through boto3 against a real ``fastinvoke serve`` (docs/lambda-behaviour.md,
"Invoke API")."""

from __future__ import annotations

import base64
import json
import re
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import UUID, notify_socket, report_of
from http_server import Server


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, dict[str, Any]]:
    response = raised.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response)


def test_a_synchronous_invoke_answers_as_lambda_does(client: Any) -> None:
    response = client.invoke(FunctionName="echo", Payload=b'{"a": [1, 2]}')
    assert response["StatusCode"] == 200
    assert response["Payload"].read() == b'{"a": [1, 2]}'  # as Lambda's json.dumps writes it
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response and "LogResult" not in response
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(UUID, response["ResponseMetadata"]["RequestId"])


def test_an_empty_payload_runs_as_an_empty_object(client: Any) -> None:
    assert client.invoke(FunctionName="echo")["Payload"].read() == b"{}"


def test_qualifier_and_arns_name_the_same_function(client: Any) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:echo"
    for name, qualifier in ((arn, None), (arn + ":$LATEST", None), ("echo", "$LATEST"),
                            ("123456789012:function:echo", "$LATEST")):
        extra = {} if qualifier is None else {"Qualifier": qualifier}
        assert client.invoke(FunctionName=name, Payload=b"7", **extra)["Payload"].read() == b"7"
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName="echo:$LATEST", Qualifier="1", Payload=b"1")
    assert error_of(raised)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.invoke(FunctionName="echo", Qualifier="3", Payload=b"1")
    assert raised.value.response["Error"]["Message"].endswith(":function:echo:3")


def test_a_function_error_is_a_200_with_the_error_document(client: Any) -> None:
    response = client.invoke(FunctionName="raises", LogType="Tail")
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    document = json.loads(response["Payload"].read())
    assert document["errorType"] == "ValueError" and document["errorMessage"] == "boom"
    tail = base64.b64decode(response["LogResult"]).decode()
    assert report_of(tail)["request_id"] == response["ResponseMetadata"]["RequestId"]


def test_a_timeout_is_a_function_error(client: Any) -> None:
    response = client.invoke(FunctionName="hang", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "Sandbox.Timedout"


def test_the_log_tail_holds_what_the_function_printed(client: Any) -> None:
    response = client.invoke(FunctionName="printer", Payload=b'{"message": "hello tail"}',
                             LogType="Tail")
    assert json.loads(response["Payload"].read()) == {"printed": "hello tail"}
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "hello tail" in tail and tail.startswith("START RequestId: ")


def test_the_client_context_reaches_the_function(client: Any) -> None:
    context = {"client": {"installation_id": "i-1", "app_title": "t"}, "custom": {"k": "v"}}
    response = client.invoke(FunctionName="context", Payload=b"{}",
                             ClientContext=base64.b64encode(json.dumps(context).encode()).decode())
    seen = json.loads(response["Payload"].read())
    assert seen["client"]["installation_id"] == "i-1"
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName="context", Payload=b"{}", ClientContext="not base64!")
    assert error_of(raised)[:2] == ("InvalidRequestContentException", 400)


def test_the_callers_trace_header_reaches_the_function(client: Any) -> None:
    def add_header(request: Any, **_: Any) -> None:
        request.headers["X-Amzn-Trace-Id"] = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"

    client.meta.events.register("before-sign.lambda.Invoke", add_header)
    try:
        seen = json.loads(client.invoke(FunctionName="context")["Payload"].read())
    finally:
        client.meta.events.unregister("before-sign.lambda.Invoke", add_header)
    assert re.fullmatch(r"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};"
                        r"Sampled=1", seen["env"]["_X_AMZN_TRACE_ID"])


def test_event_and_dry_run(client: Any, lambda_server: Server) -> None:
    before = client.invoke(FunctionName="echo", Payload=b"0")  # a warm worker for the Event
    assert before["Payload"].read() == b"0"
    event = client.invoke(FunctionName="sleeper", InvocationType="Event", Payload=b'{"id": 1}')
    assert event["StatusCode"] == 202 and event["Payload"].read() == b""
    assert "ExecutedVersion" not in event
    dry = client.invoke(FunctionName="echo", InvocationType="DryRun", Payload=b"{}")
    assert dry["StatusCode"] == 204 and dry["Payload"].read() == b""
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName="echo", InvocationType="DryRun", Payload=b"{nope")
    assert error_of(raised)[:2] == ("InvalidRequestContentException", 400)
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName="echo", InvocationType="Sometimes", Payload=b"{}")
    assert error_of(raised)[:2] == ("ValidationException", 400)


@pytest.mark.parametrize(("invocation_type", "limit"),
                         [("RequestResponse", 6 * 1024 * 1024), ("Event", 1024 * 1024)])
def test_payloads_over_lambdas_limits_are_refused(client: Any, invocation_type: str,
                                                  limit: int) -> None:
    payload = b'"' + b"x" * (limit - 1) + b'"'  # limit + 1 bytes of valid JSON
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName="echo", InvocationType=invocation_type, Payload=payload)
    code, status, response = error_of(raised)
    assert (code, status) == ("RequestEntityTooLargeException", 413)
    assert response["Error"]["Message"] == (
        f"{limit + 1} byte payload is too large for the {invocation_type} invocation type "
        f"(limit {limit} bytes)")


def test_errors_are_botocores_modeled_exceptions(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.invoke(FunctionName="nope", Payload=b"{}")
    code, status, response = error_of(raised)
    assert status == 404
    assert response["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope:$LATEST")
    with pytest.raises(client.exceptions.InvalidRequestContentException) as raised:
        client.invoke(FunctionName="echo", Payload=b"\x87not json")
    assert raised.value.response["Error"]["Message"].startswith(
        "Could not parse request body into json: Could not parse payload into json")
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName="x" * 65, Payload=b"{}")
    assert error_of(raised)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName="echo", LogType="Everything", Payload=b"{}")
    assert error_of(raised)[:2] == ("ValidationException", 400)


def test_throttling_is_a_429_with_lambdas_reason(client: Any) -> None:
    client.put_function_concurrency(FunctionName="sleeper", ReservedConcurrentExecutions=1)
    try:
        with notify_socket() as (sock, path):
            results: list[Any] = []
            call = threading.Thread(target=lambda: results.append(client.invoke(
                FunctionName="sleeper", Payload=json.dumps({"seconds": 1, "notify": path}))))
            call.start()
            sock.recv(64)
            with pytest.raises(client.exceptions.TooManyRequestsException) as raised:
                client.invoke(FunctionName="sleeper", Payload=b"{}")
            call.join()
        code, status, response = error_of(raised)
        assert status == 429 and response["Error"]["Message"] == "Rate Exceeded."
        assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert json.loads(results[0]["Payload"].read())["pid"] > 0
    finally:
        client.delete_function_concurrency(FunctionName="sleeper")
    assert json.loads(client.invoke(FunctionName="sleeper", Payload=b"{}")["Payload"].read())
