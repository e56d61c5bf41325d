"""The Runtime API as custom runtimes (``provided*``) see it: a bootstrap written here in
Python talks to it over real HTTP, and AWS's own ``awslambdaric`` runs unchanged
(docs/lambda-behaviour.md, "Runtime API")."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    ONE_VCPU_MB,
    TRACE_ID,
    MakeFunction,
    document,
    report_of,
    tail_text,
    write_code,
)

from fastinvoke import Invoker
from fastinvoke.limits import RESPONSE_PAYLOAD_LIMIT

# A custom runtime: on each event, do what the event says ("do"), and answer with what it
# saw.  INIT in the environment makes its Init fail in one of Lambda's ways.
PROBE = f"""#!{sys.executable}
import http.client, json, os, sys

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
BASE = "/2018-06-01/runtime"
ENV = ("_HANDLER", "LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
       "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "TZ", "PYTHONPATH",
       "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE", "MINE")


def call(method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(API)
    connection.request(method, BASE + path, body, headers or {{}})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), data


def outcome(status, data):
    return [status, json.loads(data) if data else None]


init = os.environ.get("INIT")
if init == "error":
    print("init failing", flush=True)
    doc = {{"errorType": "Custom.NoConfig", "errorMessage": "no config", "extra": [1]}}
    status, _, _ = call("POST", "/init/error", json.dumps(doc),
                        {{"Lambda-Runtime-Function-Error-Type": "Runtime.Custom"}})
    sys.exit(1 if status == 202 else 9)
if init == "exit":
    print("init exiting", flush=True)
    sys.exit(3)

later = None  # what a probe after a response saw, reported by the next invocation
while True:
    status, headers, body = call("GET", "/invocation/next")
    rid = headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(body)
    do = event.get("do")
    if do == "echo":
        answer = {{"headers": headers, "env": {{k: os.environ.get(k) for k in ENV}},
                  "cwd": os.getcwd(), "event": event, "status": status}}
    elif do == "probe":
        answer = [outcome(*call(m, p.replace("{{id}}", rid), b)[::2]) for m, p, b in event["calls"]]
    elif do == "error":
        call("POST", f"/invocation/{{rid}}/error", event["body"].encode(), event.get("headers"))
        later = outcome(*call("POST", f"/invocation/{{rid}}/response", b"1")[::2])
        continue
    elif do == "big":
        later = outcome(*call("POST", f"/invocation/{{rid}}/response", b"7" * event["size"])[::2])
        continue
    elif do == "later":
        answer = later
    elif do == "exit":
        print("exiting mid-invocation", flush=True)
        sys.exit(event["code"])
    elif do == "once":
        call("POST", f"/invocation/{{rid}}/response", json.dumps(os.getpid()).encode())
        sys.exit(0)  # a bootstrap that handles one event
    else:
        answer = os.getpid()
    print(f"handled {{rid}}", flush=True)
    call("POST", f"/invocation/{{rid}}/response", json.dumps(answer).encode())
"""


@pytest.fixture
def custom_runtime(make_function: MakeFunction, tmp_path: Path) -> Any:
    """``custom_runtime(files=None, bootstrap=PROBE, runtime="provided.al2023", **config)``
    creates a custom-runtime function whose code directory holds an executable bootstrap
    (unless ``bootstrap`` is None) and ``files``."""
    count = iter(range(1000))

    def make(files: dict[str, str] | None = None, bootstrap: str | None = PROBE,
             runtime: str = "provided.al2023", executable: bool = True, **config: Any) -> str:
        code = tmp_path / f"custom{next(count)}"
        files = dict(files or {})
        if bootstrap is not None:
            files["bootstrap"] = bootstrap
        write_code(code, files, ("bootstrap",) if executable else ())
        config.setdefault("memory_mb", ONE_VCPU_MB)  # a Python start at 7 % of a CPU is slow
        return make_function("function.handler", code=str(code), runtime=runtime, **config)

    return make


def test_next_headers_and_the_runtime_environment(invoker: Invoker, custom_runtime: Any,
                                                  tmp_path: Path) -> None:
    name = custom_runtime(runtime="provided", timeout_s=5, env={"MINE": "x"})
    before_ms = time.time() * 1000
    result = invoker.invoke(name, {"do": "echo", "é": 1}, client_context={"custom": {"a": 1}},
                            qualifier="$LATEST")
    got = document(result)
    headers = got["headers"]
    assert got["status"] == 200 and got["event"] == {"do": "echo", "é": 1}
    assert headers["Lambda-Runtime-Aws-Request-Id"] == result.request_id
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == invoker.function_arn(name) + \
        ":$LATEST"
    deadline = int(headers["Lambda-Runtime-Deadline-Ms"])  # epoch ms: now + the timeout
    assert before_ms + 4000 < deadline <= time.time() * 1000 + 5000
    assert json.loads(headers["Lambda-Runtime-Client-Context"]) == {"custom": {"a": 1}}
    assert headers["Content-Type"] == "application/json"
    # Every invocation has its trace; empty values are not sent at all (RIE sets them only
    # when non-empty).
    assert TRACE_ID.fullmatch(headers["Lambda-Runtime-Trace-Id"])
    assert "Lambda-Runtime-Cognito-Identity" not in headers
    code = str(tmp_path / "custom0")
    assert got["cwd"] == code
    assert got["env"] == {
        "_HANDLER": "function.handler", "LAMBDA_TASK_ROOT": code, "AWS_EXECUTION_ENV": None,
        "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(ONE_VCPU_MB),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "TZ": ":UTC", "PYTHONPATH": None,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "MINE": "x",
    }


def test_calls_the_runtimes_state_does_not_allow(invoker: Invoker, custom_runtime: Any) -> None:
    name = custom_runtime()
    wrong = "00000000-0000-4000-8000-000000000000"
    calls = [
        ["POST", f"/invocation/{wrong}/response", "1"],
        ["POST", f"/invocation/{wrong}/error", "{}"],
        ["POST", "/init/error", "{}"],
        ["GET", "/invocation/{id}/response", None],
        ["GET", "/nowhere", None],
    ]
    result = invoker.invoke(name, {"do": "probe", "calls": calls})
    invalid_id = [400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}]
    answers = document(result)
    assert answers[:3] == [invalid_id, invalid_id, [403, {
        "errorMessage": "State transition from Running to InitError failed for runtime. "
                        "Error: State transition is not allowed",
        "errorType": "InvalidStateTransition"}]]
    assert answers[3] == [405, {"errorMessage": "Use POST", "errorType": "MethodNotAllowed"}]
    assert answers[4][0] == 404 and answers[4][1]["errorType"] == "NotFound"
    assert "GET /2018-06-01/runtime/invocation/next" in answers[4][1]["errorMessage"]


def test_an_error_document_is_relayed_unchanged(invoker: Invoker, custom_runtime: Any) -> None:
    name = custom_runtime()
    body = '{"errorMessage": "kept as sent", "errorType": "Custom.Failure", "more": [1, 2]}'
    result = invoker.invoke(name, {"do": "error", "body": body,
                                   "headers": {"Lambda-Runtime-Function-Error-Type": "X.Y"}})
    assert (result.function_error, result.payload) == ("Unhandled", body.encode())
    # Answering again after the error: the runtime already reported this invocation.
    assert document(invoker.invoke(name, {"do": "later"})) == [403, {
        "errorMessage": "State transition from RuntimeResponseSentState to InvocationResponse "
                        "failed for runtime. Error: State transition is not allowed",
        "errorType": "InvalidStateTransition"}]


def test_a_response_too_large(invoker: Invoker, custom_runtime: Any) -> None:
    name = custom_runtime()
    result = invoker.invoke(name, {"do": "big", "size": RESPONSE_PAYLOAD_LIMIT + 1})
    assert result.function_error == "Unhandled"
    assert document(result) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
                        "(6291556 bytes).", "errorType": "Function.ResponseSizeTooLarge"}
    assert document(invoker.invoke(name, {"do": "later"})) == [413, {
        "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "RequestEntityTooLarge"}]
    at_limit = invoker.invoke(name, {"do": "big", "size": RESPONSE_PAYLOAD_LIMIT})
    assert at_limit.function_error is None and len(at_limit.payload) == RESPONSE_PAYLOAD_LIMIT


def test_init_error_posted_by_the_runtime(invoker: Invoker, custom_runtime: Any) -> None:
    name = custom_runtime(env={"INIT": "error"})
    for attempt in (1, 2):  # every invocation retries Init in a new environment
        result = invoker.invoke(name, {}, log_type="Tail")
        assert result.function_error == "Unhandled"
        assert json.loads(result.payload) == {"errorType": "Custom.NoConfig",
                                              "errorMessage": "no config", "extra": [1]}
        text = tail_text(result)
        assert "init failing" in text and report_of(text)["init"] is not None
        assert invoker.meter(name)["cold_starts"] == attempt


@pytest.mark.parametrize(("files", "bootstrap", "executable", "message"), [
    ({"other": ""}, None, True, "Couldn't find valid bootstrap(s): [{code}/bootstrap "
     "/opt/bootstrap]"),
    ({}, PROBE, False, "fork/exec {code}/bootstrap: permission denied"),
])
def test_a_bootstrap_that_cannot_start(invoker: Invoker, custom_runtime: Any, tmp_path: Path,
                                       files: dict[str, str], bootstrap: str | None,
                                       executable: bool, message: str) -> None:
    name = custom_runtime(files, bootstrap, executable=executable)
    result = invoker.invoke(name, {})
    got = document(result)
    assert got["errorType"] == "Runtime.InvalidEntrypoint"
    assert got["errorMessage"].startswith(message.format(code=tmp_path / "custom0")), got


@pytest.mark.parametrize(("env", "bootstrap", "error_type", "reason"), [
    ({"INIT": "exit"}, PROBE, "Runtime.ExitError", "Runtime exited with error: exit status 3"),
    ({}, "echo no interpreter line\n", "Runtime.InvalidEntrypoint",
     "fork/exec {code}/bootstrap: exec format error"),
], ids=["exits", "no-shebang"])
def test_an_init_that_ends_the_runtime(invoker: Invoker, custom_runtime: Any, tmp_path: Path,
                                       env: dict[str, str], bootstrap: str, error_type: str,
                                       reason: str) -> None:
    name = custom_runtime(bootstrap=bootstrap, env=env)
    result = invoker.invoke(name, {}, log_type="Tail")
    got = document(result)
    prefix = f"RequestId: {result.request_id} Error: " + reason.format(code=tmp_path / "custom0")
    assert got["errorType"] == error_type and got["errorMessage"].startswith(prefix), got
    assert f"{prefix}" in tail_text(result)


def test_a_runtime_ending_mid_invocation(invoker: Invoker, custom_runtime: Any) -> None:
    name = custom_runtime()
    result = invoker.invoke(name, {"do": "exit", "code": 4}, log_type="Tail")
    assert document(result) == {"errorType": "Runtime.ExitError", "errorMessage":
                                f"RequestId: {result.request_id} Error: Runtime exited with "
                                "error: exit status 4"}
    assert "exiting mid-invocation" in tail_text(result)
    assert isinstance(invoker.call(name, {}), int)  # the pool healed


def test_a_bootstrap_that_handles_one_event_starts_again(invoker: Invoker,
                                                         custom_runtime: Any) -> None:
    name = custom_runtime()
    results = [invoker.invoke(name, {"do": "once"}, log_type="Tail") for _ in range(3)]
    pids = [document(r) for r in results]
    assert len(set(pids)) == 3  # a new runtime process each time, in the same worker
    assert all(report_of(tail_text(r))["init"] is not None for r in results)
    meter = invoker.meter(name)
    assert (meter["cold_starts"], meter["errors"]) == (3, 0)


# -- AWS's Python runtime interface client, unchanged --------------------------------------

AWSLAMBDARIC_APP = """
import logging
calls = 0

def handler(event, context):
    global calls
    calls += 1
    logging.getLogger().warning("adding for %s", context.aws_request_id)
    if event.get("fail"):
        raise ValueError("no sum today")
    return {"sum": event["value1"] + event["value2"], "calls": calls,
            "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 3000}
"""


def test_awslambdaric_runs_as_a_custom_runtime(invoker: Invoker, custom_runtime: Any) -> None:
    pytest.importorskip("awslambdaric", reason="awslambdaric is in the test extra: "
                                                "pip install -e '.[test]'")
    bootstrap = f"#!/bin/sh\nexec {sys.executable} -m awslambdaric app.handler\n"
    name = custom_runtime({"app.py": textwrap.dedent(AWSLAMBDARIC_APP)}, bootstrap)
    first = invoker.invoke(name, {"value1": 10, "value2": 20}, log_type="Tail")
    assert first.function_error is None, first.payload
    assert document(first) == {"sum": 30, "calls": 1, "remaining_ok": True}
    text = tail_text(first)
    assert "[WARNING]\t" in text and f"\t{first.request_id}\tadding for {first.request_id}" \
        in text, text
    assert report_of(text)["init"] is not None
    failed = invoker.invoke(name, {"fail": True})
    got = document(failed)
    assert (got["errorType"], got["errorMessage"], got["requestId"]) == (
        "ValueError", "no sum today", failed.request_id)
    assert any("app.py" in frame for frame in got["stackTrace"])
    again = invoker.invoke(name, {"value1": 1, "value2": 2}, log_type="Tail")
    assert document(again)["calls"] == 3  # warm: the same runtime process
    assert report_of(tail_text(again))["init"] is None
