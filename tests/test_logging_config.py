"""Lambda's logging controls (LoggingConfig): the JSON log format of the Python and
Node.js runtimes, application and system log levels, the platform's JSON records and a
log group of the function's choosing; through a real Invoker, a real ``serve`` (boto3) and
a SAM template."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    NO_NODE,
    NODE_RUNTIME,
    ONE_VCPU_MB,
    UUID,
    MakeFunction,
    function_resource,
    write_code,
)
from http_server import serving, zip_of

from fastinvoke import Invoker
from fastinvoke.errors import InvalidParameterValueException, ValidationException

ROLE = "arn:aws:iam::123456789012:role/lambda"
ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _records(invoker: Invoker, name: str) -> list[Any]:
    """The function's log lines, each decoded when it is JSON."""
    lines = []
    for event in invoker.log_events(name):
        try:
            lines.append(json.loads(event.message))
        except ValueError:
            lines.append(event.message)
    return lines


def test_python_logs_json_records_from_its_level_up(invoker: Invoker,
                                                    make_function: MakeFunction) -> None:
    name = make_function("app_logging.handler", log_format="JSON")
    result = invoker.invoke(name, {})
    lines = _records(invoker, name)
    start, printed, info, error, report = lines
    assert start["type"] == "platform.start" and re.fullmatch(ISO_MS, start["time"])
    assert start["record"] == {"requestId": result.request_id, "version": "$LATEST"}
    assert printed == "plain print\n"  # print is not logging: it stays text
    assert re.fullmatch(ISO_MS, info.pop("timestamp"))
    assert info == {"level": "INFO", "message": "hello world", "logger": "app",
                    "requestId": result.request_id, "orderId": 42}  # DEBUG: left out
    assert (error["level"], error["errorType"], error["errorMessage"]) == (
        "ERROR", "ZeroDivisionError", "division by zero")
    assert error["location"].endswith("app_logging.py:handler:16")
    assert isinstance(error["stackTrace"], list) and error["stackTrace"]
    assert report["type"] == "platform.report" and report["record"]["status"] == "success"
    metrics = report["record"]["metrics"]
    assert metrics["memorySizeMB"] == 128 and metrics["billedDurationMs"] == 100
    assert metrics["durationMs"] >= 0 and "initDurationMs" in metrics  # a cold start


def test_python_levels_and_an_unhandled_error(invoker: Invoker,
                                              make_function: MakeFunction) -> None:
    name = make_function("app_logging.handler", log_format="JSON",
                         application_log_level="DEBUG", system_log_level="WARN")
    result = invoker.invoke(name, {"fail": True})
    lines = _records(invoker, name)
    # WARN hides the platform's INFO records; DEBUG lets the application's debug through.
    assert [line if isinstance(line, str) else line.get("level", line.get("log_level"))
            for line in lines] == ["plain print\n", "DEBUG", "INFO", "ERROR", "ERROR"]
    unhandled = lines[-1]
    assert (unhandled["errorType"], unhandled["errorMessage"], unhandled["requestId"]) == (
        "ValueError", "boom", result.request_id)
    assert result.function_error == "Unhandled"


def test_logging_config_is_checked_as_lambda_checks_it(invoker: Invoker,
                                                        make_function: MakeFunction) -> None:
    with pytest.raises(InvalidParameterValueException, match="only be set when the log format"):
        make_function("app_logging.handler", application_log_level="DEBUG")
    with pytest.raises(ValidationException, match="logFormat"):
        make_function("app_logging.handler", log_format="json")
    with pytest.raises(ValidationException, match="systemLogLevel"):
        make_function("app_logging.handler", log_format="JSON", system_log_level="ERROR")


def test_a_log_group_of_its_own(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("context_dump.handler", log_group="/shared/app")
    seen = invoker.call(name)
    assert seen["log_group_name"] == "/shared/app"
    assert seen["env"]["AWS_LAMBDA_LOG_GROUP_NAME"] == "/shared/app"
    assert any(event.message.startswith("REPORT") for event in invoker.log_events(name))


@pytest.mark.skipif(NODE_RUNTIME is None, reason=NO_NODE)
def test_nodejs_console_writes_json_records(invoker: Invoker, make_function: MakeFunction,
                                            tmp_path: Path) -> None:
    code = tmp_path / "node"
    write_code(code, {"index.js": """
exports.handler = async () => {
  console.log('hello', {a: 1});
  console.info({order: 7});
  console.debug('hidden');
  console.error('failed:', new TypeError('bad input'));
  return 'ok';
};
"""})
    name = make_function("index.handler", code=str(code), runtime=NODE_RUNTIME,
                         memory_mb=ONE_VCPU_MB, log_format="JSON",
                         application_log_level="INFO")
    result = invoker.invoke(name, {})
    records = [line for line in _records(invoker, name) if "level" in line]
    for record in records:
        assert re.fullmatch(ISO_MS, record.pop("timestamp"))
    hello, order, failed = records
    assert hello == {"level": "INFO", "requestId": result.request_id,
                     "message": "hello { a: 1 }"}
    assert order == {"level": "INFO", "requestId": result.request_id,
                     "message": {"order": 7}}
    assert (failed["level"], failed["errorType"], failed["errorMessage"]) == (
        "ERROR", "TypeError", "bad input")
    assert failed["message"].startswith("failed: TypeError: bad input")
    assert re.fullmatch(UUID, failed["requestId"])


def test_logging_config_over_the_api_and_in_a_template(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource("Json", "json-logs",
                                                           "app_logging.handler", """\
      LoggingConfig:
        LogFormat: JSON
        ApplicationLogLevel: WARN
        LogGroup: /apps/json
"""))
    with serving(tmp_path, template=template) as server:
        client = server.client()
        got = client.get_function_configuration(FunctionName="json-logs")["LoggingConfig"]
        assert got == {"LogFormat": "JSON", "ApplicationLogLevel": "WARN",
                       "SystemLogLevel": "INFO", "LogGroup": "/apps/json"}
        code = zip_of({"app.py": "def handler(event, context):\n    return 1\n"})
        created = client.create_function(
            FunctionName="made", Runtime=f"python3.{sys.version_info.minor}", Role=ROLE,
            Handler="app.handler", Code={"ZipFile": code},
            LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "DEBUG"})
        assert created["LoggingConfig"] == {"LogFormat": "JSON", "ApplicationLogLevel": "INFO",
                                            "SystemLogLevel": "DEBUG",
                                            "LogGroup": "/aws/lambda/made"}
        back = client.update_function_configuration(FunctionName="made",
                                                    LoggingConfig={"LogFormat": "Text"})
        assert back["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": "/aws/lambda/made"}
        with pytest.raises(client.exceptions.InvalidParameterValueException):
            client.update_function_configuration(
                FunctionName="made", LoggingConfig={"ApplicationLogLevel": "DEBUG"})
        client.invoke(FunctionName="json-logs")
    # ``fastinvoke logs NAME`` reads the function's own log group; WARN hid INFO.
    shown = subprocess.run([sys.executable, "-m", "fastinvoke", "logs", "json-logs",
                            "--state-dir", str(tmp_path / "state")],
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    levels = [json.loads(line).get("level") for line in shown.stdout.splitlines()
              if line.startswith("{")]
    assert levels == [None, "ERROR", None]  # platform.start, the exception, platform.report
