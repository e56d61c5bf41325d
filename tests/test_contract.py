"""The Invoke contract, once, against every front-end: results, function errors,
timeouts, Event, DryRun, Tail, client context and Lambda's service errors."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from frontends import Embedded, Served
from helpers import document, report_of, tail_text, wait_until

from fastinvoke.errors import (
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    ResourceNotFoundException,
    TooManyRequestsException,
    ValidationException,
)

# The ``served`` server (conftest.py) has no template: each test creates its functions.
SERVE_TEMPLATE = False


@pytest.fixture(params=["embedded", "http", "zmq", "ray"])
def frontend(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "embedded":
        yield Embedded(request.getfixturevalue("invoker"),
                       request.getfixturevalue("make_function"))
        return
    if request.param == "ray":  # the embedded API, its workers on a 2-node Ray cluster
        invoker = request.getfixturevalue("make_cluster_invoker")()
        yield Embedded(invoker, functools.partial(request.getfixturevalue("make_function"),
                                                  invoker=invoker))
        return
    frontend = Served(request.getfixturevalue("served"), request.param)
    try:
        yield frontend
    finally:
        frontend.close()


def test_a_result(frontend: Any) -> None:
    name = frontend.create("add.handler")
    result = frontend.invoke(name, {"a": 10, "b": 20})
    assert (result.status_code, result.payload, result.function_error,
            result.executed_version) == (200, b'{"sum": 30}', None, "$LATEST")


def test_raw_json_bytes_pass_through(frontend: Any) -> None:
    name = frontend.create("echo.handler")
    assert document(frontend.invoke(name, b'{"a": [1, 2.5, "x"]}')) == {"a": [1, 2.5, "x"]}


def test_a_function_error_is_a_result(frontend: Any) -> None:
    name = frontend.create("raise_.handler")
    result = frontend.invoke(name, {})
    assert (result.status_code, result.function_error) == (200, "Unhandled")
    error = document(result)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "boom")
    assert error["requestId"] == result.request_id


def test_a_timeout(frontend: Any) -> None:
    name = frontend.create("counter.handler", timeout_s=1)
    result = frontend.invoke(name, {"hang": True})
    assert result.function_error == "Unhandled"
    assert document(result) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds"}


def test_tail_carries_the_report(frontend: Any) -> None:
    name = frontend.create("add.handler")
    result = frontend.invoke(name, {"a": 1, "b": 2}, log_type="Tail")
    assert report_of(tail_text(result))["request_id"] == result.request_id


def test_client_context_reaches_the_handler(frontend: Any) -> None:
    name = frontend.create("context_dump.handler")
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    seen = document(frontend.invoke(name, {}, client_context=context))
    assert json.dumps(seen).count('"k"') == 1


def test_event_is_accepted_and_runs(frontend: Any) -> None:
    name = frontend.create("add.handler")
    result = frontend.invoke(name, {"a": 1, "b": 1}, invocation_type="Event")
    assert (result.status_code, result.payload) == (202, b"")
    wait_until(lambda: frontend.meter(name)["invocations"] == 1)


def test_dry_run_only_validates(frontend: Any) -> None:
    name = frontend.create("add.handler")
    assert frontend.invoke(name, {}, invocation_type="DryRun").status_code == 204
    assert frontend.meter(name)["invocations"] == 0
    with pytest.raises(ResourceNotFoundException):
        frontend.invoke("missing", {}, invocation_type="DryRun")


@pytest.mark.parametrize(("call", "error", "text"), [
    (lambda f, n: f.invoke("missing", {}), ResourceNotFoundException, "Function not found: "),
    (lambda f, n: f.invoke(n, {}, qualifier="7"), ResourceNotFoundException,
     "Function not found: "),
    (lambda f, n: f.invoke(n, b"{not json"), InvalidRequestContentException,
     "Could not parse request body into json"),
    (lambda f, n: f.invoke(n, b'"' + b"x" * (6 * 1024 * 1024) + b'"'),
     RequestEntityTooLargeException, "is too large for the RequestResponse invocation type"),
    (lambda f, n: f.invoke(n, b'"' + b"x" * (1024 * 1024) + b'"', invocation_type="Event"),
     RequestEntityTooLargeException, "is too large for the Event invocation type"),
    (lambda f, n: f.invoke(n, {}, invocation_type="Sometimes"), ValidationException,
     "Member must satisfy enum value set: [Event, RequestResponse, DryRun]"),
])
def test_service_errors(frontend: Any, call: Any,
                        error: type[Exception], text: str) -> None:
    name = frontend.create("add.handler")
    with pytest.raises(error) as raised:
        call(frontend, name)
    assert text in raised.value.message


def test_throttling(frontend: Any) -> None:
    name = frontend.create("add.handler", reserved_concurrency=0)
    with pytest.raises(TooManyRequestsException) as raised:
        frontend.invoke(name, {})
    assert (raised.value.message, raised.value.reason) == (
        "Rate Exceeded.", "ReservedFunctionConcurrentInvocationLimitExceeded")
    assert frontend.meter(name)["throttles"] == 1
