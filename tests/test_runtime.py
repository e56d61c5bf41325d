"""The runtime as a handler sees it, and the Invoke API's answers, through a real Invoker."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import uuid
from pathlib import Path

import pytest
from helpers import (
    FUNCTIONS,
    TRACE_ID,
    UUID,
    MakeFunction,
    MakeInvoker,
    document,
    log_of,
    report_of,
    tail_text,
    wait_until,
)

import fastinvoke
from fastinvoke import FunctionConfig, FunctionError, Invoker
from fastinvoke.config import LOCAL_PYTHON
from fastinvoke.errors import (
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    ResourceNotFoundException,
    ValidationException,
)

DOCUMENT_KEYS = ["errorMessage", "errorType", "requestId", "stackTrace"]
ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


def line_of(module: str, text: str) -> int:
    """The line number of ``text`` in tests/functions/<module>.py."""
    lines = Path(FUNCTIONS, module + ".py").read_text().split("\n")
    return next(number for number, line in enumerate(lines, 1) if text in line)


def assert_init_error(invoker: Invoker, name: str, error_type: str,
                      message: str | None = None) -> dict:
    """Invoke ``name`` and check Lambda's Init-failure answer; return the document."""
    result = invoker.invoke(name)
    assert result.status_code == 200
    assert result.function_error == "Unhandled"
    doc = document(result)
    assert list(doc) == DOCUMENT_KEYS, doc
    assert doc["errorType"] == error_type
    if message is not None:
        assert doc["errorMessage"] == message
    assert doc["requestId"] == ""  # Init has no request
    return doc


# -- Init: resolving the handler -----------------------------------------------------------


def test_missing_module(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("nope.handler")
    doc = assert_init_error(invoker, name, "Runtime.ImportModuleError",
                            "Unable to import module 'nope': No module named 'nope'")
    assert doc["stackTrace"] == []


@pytest.mark.parametrize(("handler", "error_type", "message"), [
    pytest.param("bad_import.handler", "Runtime.ImportModuleError",
                 "Unable to import module 'bad_import': No module named "
                 "'missing_dependency_for_fastinvoke_tests'",
                 id="module-importing-a-missing-module"),
    pytest.param("add.missing", "Runtime.HandlerNotFound",
                 "Handler 'missing' missing on module 'add'", id="missing-handler-function"),
    pytest.param("noperiod", "Runtime.MalformedHandlerName",
                 "Bad handler 'noperiod': not enough values to unpack (expected 2, got 1)",
                 id="malformed-handler-name"),
    pytest.param("sys.handler", "Runtime.BuiltInModuleConflict",
                 "Cannot use built-in module sys as a handler module",
                 id="built-in-module-as-handler"),
])
def test_a_handler_that_cannot_be_loaded(invoker: Invoker, make_function: MakeFunction,
                                         handler: str, error_type: str, message: str) -> None:
    assert_init_error(invoker, make_function(handler), error_type, message)


def test_handler_in_a_subdirectory(invoker: Invoker, make_function: MakeFunction) -> None:
    """``dir/module.function``: the slash becomes a dot, as in Lambda's runtime."""
    name = make_function("sub/app.handler", source="def handler(event, context):\n"
                                                   "    return __name__\n")
    assert invoker.call(name) == "sub.app"


def test_syntax_error_in_the_handler_module(invoker: Invoker,
                                            make_function: MakeFunction) -> None:
    name = make_function("syntax_error.handler")
    doc = assert_init_error(invoker, name, "Runtime.UserCodeSyntaxError")
    assert doc["errorMessage"].startswith(
        "Syntax error in module 'syntax_error': 'return' outside function")
    line = line_of("syntax_error", 'return "unreachable"  # noqa')
    path = os.path.join(FUNCTIONS, "syntax_error.py")
    assert len(doc["stackTrace"]) == 1
    assert doc["stackTrace"][0].startswith(f'  File "{path}" Line {line}\n')
    assert 'return "unreachable"' in doc["stackTrace"][0]


def test_module_raising_at_import(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("init_raises.handler")
    result = invoker.invoke(name, log_type="Tail")
    assert (result.status_code, result.function_error) == (200, "Unhandled")
    doc = document(result)
    assert list(doc) == DOCUMENT_KEYS
    assert doc["errorType"] == "Exception"  # the class's own name, not a Runtime.* fault
    assert doc["errorMessage"] == "Runtime startup fails"
    assert doc["requestId"] == ""
    line = line_of("init_raises", "raise Exception")
    path = os.path.join(FUNCTIONS, "init_raises.py")
    assert doc["stackTrace"][-1] == (f'  File "{path}", line {line}, in <module>\n'
                                     '    raise Exception("Runtime startup fails")\n')
    assert not any("/fastinvoke/" in frame for frame in doc["stackTrace"]), doc["stackTrace"]
    assert "[ERROR] Exception: Runtime startup fails\r" in tail_text(result)


# -- errors raised by a handler -----------------------------------------------------------


def test_handler_exception_document(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("raise_.handler")
    result = invoker.invoke(name, log_type="Tail")
    assert (result.status_code, result.function_error) == (200, "Unhandled")
    assert result.executed_version == "$LATEST"
    doc = document(result)
    assert list(doc) == DOCUMENT_KEYS  # key order as Lambda sends it
    assert doc["errorMessage"] == "boom"
    assert doc["errorType"] == "ValueError"
    assert doc["requestId"] == result.request_id and re.fullmatch(UUID, result.request_id)
    path = os.path.join(FUNCTIONS, "raise_.py")
    line = line_of("raise_", 'raise ValueError("boom")')
    # Only the user's frame: none of fastinvoke's runtime frames.
    assert doc["stackTrace"] == [f'  File "{path}", line {line}, in handler\n'
                                 '    raise ValueError("boom")\n']
    log = tail_text(result)
    nbsp = "\u00a0"
    assert (f"[ERROR] ValueError: boom\rTraceback (most recent call last):\r"
            f'{nbsp * 2}File "{path}", line {line}, in handler\r'
            f'{nbsp * 4}raise ValueError("boom")\n') in log


def test_call_raises_function_error(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("raise_.handler")
    with pytest.raises(FunctionError) as excinfo:
        invoker.call(name, {"x": 1})
    error = excinfo.value
    assert error.error_type == "ValueError"
    assert error.error_message == "boom"
    assert str(error) == "ValueError: boom"
    assert re.fullmatch(UUID, error.request_id)
    assert json.loads(error.payload)["requestId"] == error.request_id
    assert len(error.stack_trace) == 1 and "raise_.py" in error.stack_trace[0]


def test_call_returns_the_decoded_result(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("add.handler")
    assert invoker.call(name, {"a": 2, "b": 40}) == {"sum": 42}


@pytest.mark.parametrize(("handler", "type_name"), [
    ("unserializable.handler", "object"),
    ("unserializable.a_set", "set"),  # json.dumps refuses a set, so Lambda does too
])
def test_unserializable_result(invoker: Invoker, make_function: MakeFunction, handler: str,
                               type_name: str) -> None:
    name = make_function(handler)
    result = invoker.invoke(name)
    assert result.function_error == "Unhandled", result.payload[:200]
    assert document(result) == {
        "errorMessage": f"Unable to marshal response: Object of type {type_name} is not JSON "
                        "serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": result.request_id,
        "stackTrace": [],
    }


# awslambdaric's to_json: simplejson's default separators, Decimal as a number, NaN and
# Infinity allowed, non-ASCII escaped except on python3.12 and 3.13; bytes sent as they are.
@pytest.mark.parametrize(("kind", "runtime", "expected"), [
    ("dict", None, b'{"sum": 42, "items": [1, 2]}'),
    ("tuple", None, b'[1, "two"]'),
    ("text", "python3.11", b'"\\u00e9\\u2713"'),
    ("text", "python3.12", '"é✓"'.encode()),
    ("nan", None, b"NaN"),
    ("infinity", None, b"-Infinity"),
    ("decimal", None, b"1.10"),
    ("none", None, b"null"),
    ("bytes", None, b"raw \xff"),
], ids=["separators-dict", "separators-tuple", "non-ascii-py3.11", "non-ascii-py3.12", "nan",
        "infinity", "decimal", "none", "bytes"])
def test_result_bytes_are_what_lambdas_python_runtime_sends(
        invoker: Invoker, make_function: MakeFunction, kind: str, runtime: str | None,
        expected: bytes) -> None:
    config = {} if runtime is None else {"runtime": runtime}
    if runtime not in (None, LOCAL_PYTHON):
        with pytest.warns(RuntimeWarning, match="runs on this machine"):
            name = make_function("values.handler", **config)
    else:
        name = make_function("values.handler", **config)
    result = invoker.invoke(name, {"kind": kind})
    assert result.function_error is None, result.payload
    assert result.payload == expected


def test_result_dict_keys_json_accepts(invoker: Invoker, make_function: MakeFunction) -> None:
    """json turns int, float, bool and None keys into strings; it does not refuse them."""
    name = make_function("values.handler")
    result = invoker.invoke(name, {"kind": "keys"})
    assert result.function_error is None, result.payload
    assert document(result) == {"1": "a", "null": "b", "2.5": "c", "false": "d"}


def test_response_too_large(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("big_response.handler")
    result = invoker.invoke(name)
    assert (result.status_code, result.function_error) == (200, "Unhandled")
    doc = document(result)
    assert doc == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
                        "(6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    assert list(doc) == ["errorMessage", "errorType"]
    assert invoker.meter(name)["errors"] == 1


def test_response_at_the_size_limit_is_returned(invoker: Invoker,
                                                make_function: MakeFunction) -> None:
    name = make_function("echo.handler")
    event = "x" * (6 * 1024 * 1024 - 2)  # its JSON is exactly 6 MiB, the request limit
    result = invoker.invoke(name, event)
    assert result.function_error is None
    assert len(result.payload) == 6 * 1024 * 1024 and json.loads(result.payload) == event


# -- the context object and the environment -------------------------------------------------


STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")


def test_context_object(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("context_dump.handler", memory_mb=256, timeout_s=3)
    result = invoker.invoke(name)
    seen = document(result)
    assert seen["aws_request_id"] == result.request_id
    assert seen["invoked_function_arn"] == ARN + name
    assert seen["function_name"] == name
    assert seen["function_version"] == "$LATEST"
    assert seen["memory_limit_in_mb"] == "256" and seen["memory_limit_type"] == "str"
    assert seen["log_group_name"] == f"/aws/lambda/{name}"
    assert STREAM.match(seen["log_stream_name"]), seen["log_stream_name"]
    assert 0 < seen["remaining_ms"] <= 3000
    assert seen["cognito_identity_id"] is None and seen["cognito_identity_pool_id"] is None
    assert seen["has_client_context"] is False


CALLER_TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_each_invocation_has_its_trace_id(invoker: Invoker,
                                          make_function: MakeFunction) -> None:
    name = make_function("context_dump.handler")
    first, second = (invoker.call(name)["env"]["_X_AMZN_TRACE_ID"] for _ in range(2))
    assert TRACE_ID.fullmatch(first) and TRACE_ID.fullmatch(second) and first != second
    # A caller's trace goes on: its Root and Sampled, a new Parent segment.
    seen = document(invoker.invoke(name, trace_header=CALLER_TRACE))["env"]["_X_AMZN_TRACE_ID"]
    root, parent, sampled = seen.split(";")
    assert (root, sampled) == ("Root=1-5759e988-bd862e3fe1be46a994272793", "Sampled=1")
    assert re.fullmatch(r"Parent=[0-9a-f]{16}", parent) and parent != "Parent=53995c3f42cd8ad8"


def test_what_init_printed_begins_each_environments_stream(
        invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("init_prints.handler")
    invoker.call(name)
    invoker.call(name)  # the same environment: Init's output is not repeated
    invoker.recycle(name)
    invoker.call(name)  # a new environment: its stream begins with it too
    streams: dict[str, list[str]] = {}
    for event in invoker.log_events(name):
        streams.setdefault(event.stream, []).append(event.message)
    first, second = streams.values()
    assert first[0] == "loading the model\n" and first[1].startswith("START RequestId:")
    assert first.count("loading the model\n") == 1 and first.count("handling\n") == 2
    assert second[0] == "loading the model\n" and second[1].startswith("START RequestId:")


def test_log_stream_is_per_execution_environment(invoker: Invoker,
                                                 make_function: MakeFunction) -> None:
    name = make_function("context_dump.handler")
    first, second = invoker.call(name), invoker.call(name)
    assert first["log_stream_name"] == second["log_stream_name"]  # same warm worker
    invoker.recycle(name)
    third = invoker.call(name)
    assert STREAM.match(third["log_stream_name"])
    assert third["log_stream_name"] != first["log_stream_name"]  # a new environment


def test_context_arn_is_qualified_when_the_caller_qualified(
        invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("context_dump.handler")
    seen = document(invoker.invoke(name, qualifier="$LATEST"))
    assert seen["invoked_function_arn"] == ARN + name + ":$LATEST"


def test_remaining_time_counts_down_from_the_timeout(invoker: Invoker,
                                                     make_function: MakeFunction) -> None:
    name = make_function("context_dump.handler", timeout_s=1)
    seen = invoker.call(name)
    assert 0 < seen["remaining_ms"] <= 1000


@pytest.mark.parametrize("encode", [False, True], ids=["dict", "base64"])
def test_client_context(invoker: Invoker, make_function: MakeFunction, encode: bool) -> None:
    name = make_function("context_dump.handler")
    context = {"custom": {"k": "v", "n": 1}, "env": {"platform": "test"},
               "client": {"installation_id": "inst-1", "app_title": "tests"}}
    value = base64.b64encode(json.dumps(context).encode()).decode() if encode else context
    seen = document(invoker.invoke(name, client_context=value))
    assert seen["has_client_context"] is True
    assert seen["custom"] == {"k": "v", "n": 1}
    assert seen["client_env"] == {"platform": "test"}
    assert seen["client"] == {"installation_id": "inst-1", "app_title": "tests",
                              "app_version_name": None, "app_version_code": None,
                              "app_package_name": None}


def test_invalid_client_context(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("context_dump.handler")
    with pytest.raises(InvalidRequestContentException) as excinfo:
        invoker.invoke(name, client_context="not base64!")
    assert excinfo.value.message == "Client context must be a valid Base64-encoded JSON object."


def test_environment(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("context_dump.handler", memory_mb=512, env={"MY_SETTING": "on"})
    seen = invoker.call(name)
    assert seen["env"] == {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": seen["log_stream_name"],
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "_HANDLER": "context_dump.handler",
        "LAMBDA_TASK_ROOT": FUNCTIONS,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{LOCAL_PYTHON}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TZ": ":UTC",
        "MY_SETTING": "on",
        "_X_AMZN_TRACE_ID": seen["env"]["_X_AMZN_TRACE_ID"],
        # Lambda's PYTHONPATH (its runtime's directory), not the server's; none of the
        # variables the template needed to start.
        "PYTHONPATH": str(Path(fastinvoke.__file__).parent / "runtime"),
        "PYTHONUNBUFFERED": None,
        "PYTHONDONTWRITEBYTECODE": None,
    }
    assert TRACE_ID.fullmatch(seen["env"]["_X_AMZN_TRACE_ID"])
    assert seen["cwd"] == FUNCTIONS  # the code directory is the working directory


def test_environment_follows_the_invokers_region(make_invoker: MakeInvoker,
                                                 make_function: MakeFunction) -> None:
    invoker = make_invoker(region="eu-west-1", account_id="000011112222")
    name = make_function("context_dump.handler", invoker=invoker)
    seen = invoker.call(name)
    assert seen["env"]["AWS_REGION"] == "eu-west-1"
    assert seen["invoked_function_arn"] == f"arn:aws:lambda:eu-west-1:000011112222:function:{name}"


# -- payloads ---------------------------------------------------------------------------------


def test_empty_payload_is_an_empty_object(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("echo.handler")
    assert invoker.call(name, b"") == {}
    assert invoker.call(name) == {}
    assert invoker.invoke(name, b"").payload == b"{}"


def test_payload_bytes_reach_the_handler_decoded(invoker: Invoker,
                                                 make_function: MakeFunction) -> None:
    name = make_function("echo.handler")
    assert invoker.call(name, b'{"a": [1, 2.5, "\\u00e9", null]}') == {"a": [1, 2.5, "é", None]}
    assert invoker.call(name, b"42") == 42  # any JSON value, not only objects
    assert invoker.invoke(name, "text").payload == b'"text"'


def test_invalid_json_payload(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("echo.handler")
    for invocation_type in ("RequestResponse", "Event", "DryRun"):
        with pytest.raises(InvalidRequestContentException) as excinfo:
            invoker.invoke(name, b"{not json", invocation_type=invocation_type)
        assert excinfo.value.status == 400
        assert excinfo.value.message.startswith(
            "Could not parse request body into json: Could not parse payload into json: ")
    assert invoker.meter(name)["invocations"] == 0


@pytest.mark.parametrize(("invocation_type", "limit"), [
    ("RequestResponse", 6 * 1024 * 1024),
    ("Event", 1024 * 1024),
])
def test_oversized_payload(invoker: Invoker, make_function: MakeFunction, invocation_type: str,
                           limit: int) -> None:
    name = make_function("ok.handler")
    too_big = b'"' + b"a" * (limit - 1) + b'"'  # limit + 1 bytes of JSON
    with pytest.raises(RequestEntityTooLargeException) as excinfo:
        invoker.invoke(name, too_big, invocation_type=invocation_type)
    assert excinfo.value.status == 413
    assert excinfo.value.message == (
        f"{limit + 1} byte payload is too large for the {invocation_type} invocation type "
        f"(limit {limit} bytes)")
    at_limit = too_big[:-2] + b'"'
    accepted = invoker.invoke(name, at_limit, invocation_type=invocation_type)
    if invocation_type == "Event":
        assert accepted.status_code == 202
        wait_until(lambda: log_of(invoker, name, accepted.request_id), timeout=5,
                   message="the Event invocation never ran")
    else:
        assert (accepted.status_code, accepted.payload) == (200, b'"ok"')


# -- service errors ------------------------------------------------------------------------


def test_unknown_function(invoker: Invoker) -> None:
    with pytest.raises(ResourceNotFoundException) as excinfo:
        invoker.invoke("nope")
    error = excinfo.value
    assert error.status == 404 and error.code == "ResourceNotFoundException"
    message = "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope:$LATEST"
    assert error.message == message
    assert error.to_body() == {"Type": "User", "Message": message}
    with pytest.raises(ResourceNotFoundException):
        invoker.call("nope", {})
    with pytest.raises(ResourceNotFoundException):
        invoker.invoke("nope", invocation_type="DryRun")


def test_unknown_qualifier(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("ok.handler")
    with pytest.raises(ResourceNotFoundException) as excinfo:
        invoker.invoke(name, qualifier="7")
    assert excinfo.value.message == f"Function not found: {ARN}{name}:7"


def test_unknown_invocation_type(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("ok.handler")
    with pytest.raises(ValidationException) as excinfo:
        invoker.invoke(name, invocation_type="Later")
    assert excinfo.value.message == (
        "1 validation error detected: Value 'Later' at 'invocationType' failed to satisfy "
        "constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]")


@pytest.mark.parametrize(("config", "message"), [
    ({"memory_mb": 20000}, "Value '20000' at 'memorySize' failed to satisfy constraint: "
                           "Member must have value less than or equal to 10240"),
    ({"memory_mb": 127}, "Value '127' at 'memorySize' failed to satisfy constraint: "
                         "Member must have value greater than or equal to 128"),
    ({"timeout_s": 901}, "Value '901' at 'timeout' failed to satisfy constraint: "
                         "Member must have value less than or equal to 900"),
    ({"timeout_s": 0}, "Value '0' at 'timeout' failed to satisfy constraint: "
                       "Member must have value greater than or equal to 1"),
    ({"name": "f" * 65}, f"Value '{'f' * 65}' at 'functionName' failed to satisfy constraint: "
                         "Member must have length less than or equal to 64"),
], ids=["memory-high", "memory-low", "timeout-high", "timeout-low", "name-too-long"])
def test_function_config_limits_are_refused(invoker: Invoker, config: dict,
                                            message: str) -> None:
    fields = {"name": "limits", "handler": "ok.handler", "code": FUNCTIONS, **config}
    with pytest.raises(ValidationException) as excinfo:
        invoker.create_function(FunctionConfig(**fields))
    assert excinfo.value.status == 400
    assert excinfo.value.message == "1 validation error detected: " + message
    assert invoker.list_functions() == []


def test_function_config_limits_are_inclusive(invoker: Invoker,
                                              make_function: MakeFunction) -> None:
    name = make_function("ok.handler", name="f" * 64, memory_mb=10240, timeout_s=900)
    assert invoker.call(name) == "ok"
    assert invoker.get_function(name).memory_mb == 10240


# -- invocation types -----------------------------------------------------------------------


def test_dry_run_never_runs_code(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("counter.handler")
    result = invoker.invoke(name, {"x": 1}, invocation_type="DryRun")
    assert result.status_code == 204
    assert (result.payload, result.function_error, result.log_result) == (b"", None, None)
    assert re.fullmatch(UUID, result.request_id)
    assert invoker.call(name)["count"] == 1  # the DryRun never reached the handler
    assert invoker.meter(name)["invocations"] == 1
    assert len(invoker.logs(name)) == 1


def test_event_invocation_runs_in_background(invoker: Invoker,
                                             make_function: MakeFunction) -> None:
    """The first thing a function gets is an Event: nobody waits on it, yet it runs."""
    name = make_function("printer.handler", timeout_s=1)
    message = f"event-{uuid.uuid4()}"
    result = invoker.invoke(name, {"message": message}, invocation_type="Event")
    assert result.status_code == 202 and result.payload == b""
    assert result.function_error is None and result.log_result is None
    assert re.fullmatch(UUID, result.request_id)
    text = wait_until(lambda: log_of(invoker, name, result.request_id), timeout=5,
                      message="the Event invocation never ran")
    assert f"\n{message}\n" in text
    report = report_of(text)
    assert report["status"] is None, text  # it succeeded: no timeout, no error
    assert invoker.meter(name)["timeouts"] == 0


def test_event_invocation_on_a_warm_worker(invoker: Invoker,
                                           make_function: MakeFunction) -> None:
    """An Event that takes no time ends as a success, and its worker stays warm."""
    name = make_function("counter.handler", timeout_s=1)
    first = invoker.call(name)
    result = invoker.invoke(name, {}, invocation_type="Event")
    assert result.status_code == 202
    text = wait_until(lambda: log_of(invoker, name, result.request_id), timeout=5,
                      message="the Event invocation never ran")
    assert report_of(text)["status"] is None, text
    assert invoker.meter(name)["timeouts"] == 0
    assert invoker.call(name) == {"count": 3, "pid": first["pid"]}


# -- logs ------------------------------------------------------------------------------------


def test_tail_log(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("printer.handler")
    result = invoker.invoke(name, {"message": "hello-tail"}, log_type="Tail")
    rid = result.request_id
    text = tail_text(result)
    assert text.startswith(f"START RequestId: {rid} Version: $LATEST\nhello-tail\n")
    assert re.search(rf"\n\[WARNING\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{rid}\t"
                     r"warned hello-tail\n", text), text
    assert f"\nEND RequestId: {rid}\nREPORT RequestId: {rid}\t" in text
    assert text.endswith("\t\n")
    assert report_of(text)["request_id"] == rid
    assert invoker.invoke(name, {"message": "quiet"}).log_result is None
    assert text == log_of(invoker, name, rid)  # the same text the log book keeps


def test_tail_log_is_the_last_4_kb(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("printer.handler")
    result = invoker.invoke(name, {"message": "y" * 10_000}, log_type="Tail")
    raw = base64.b64decode(result.log_result)
    assert len(raw) == 4096
    full = log_of(invoker, name, result.request_id)
    assert full.encode().endswith(raw)
    report_of(raw.decode())


def test_report_line_format(make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    invoker = make_invoker()
    name = make_function("pid.handler", invoker=invoker, memory_mb=512)
    first = invoker.invoke(name, log_type="Tail")
    second = invoker.invoke(name, log_type="Tail")
    assert first.payload == second.payload  # one warm worker
    cold, warm = report_of(tail_text(first)), report_of(tail_text(second))
    for report in (cold, warm):
        billed = int(report["billed"])
        assert billed % 100 == 0 and billed >= 100  # classic: 100 ms units
        assert billed >= float(report["duration"])
        assert report["memory"] == "512"
        assert 0 < int(report["max_used"]) <= 512
        assert report["status"] is None
    assert cold["init"] is not None and float(cold["init"]) > 0  # Init only on the first
    assert warm["init"] is None


def test_report_line_with_current_billing(make_invoker: MakeInvoker,
                                          make_function: MakeFunction) -> None:
    invoker = make_invoker(billing="current")
    name = make_function("pid.handler", invoker=invoker)
    cold = report_of(tail_text(invoker.invoke(name, log_type="Tail")))
    warm = report_of(tail_text(invoker.invoke(name, log_type="Tail")))
    # 1 ms units; Init is billed on the cold start.  The text rounds to 0.01 ms.
    charged = float(cold["duration"]) + float(cold["init"])
    assert math.ceil(charged - 0.01) <= int(cold["billed"]) <= max(1, math.ceil(charged + 0.01))
    assert warm["init"] is None
    assert int(warm["billed"]) <= max(1, math.ceil(float(warm["duration"]) + 0.01))
    figures = invoker.meter(name)
    assert figures["billing"] == "current" and figures["cold_starts"] == 1
    assert figures["billed_ms"] == int(cold["billed"]) + int(warm["billed"])
    assert figures["mb_ms"] == 128 * figures["billed_ms"]
