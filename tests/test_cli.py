"""The command line, run as a subprocess the way a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import function_resource
from http_server import serving

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "template.yaml"
REPORT = re.compile(
    r"^REPORT RequestId: [0-9a-f-]{36}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t(Init Duration: \d+\.\d\d ms\t)?$",
    re.MULTILINE,
)


def fastinvoke(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore::RuntimeWarning")
    return subprocess.run([sys.executable, "-m", "fastinvoke", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_invoke_prints_the_result_and_the_log_tail() -> None:
    done = fastinvoke("invoke", "add", "--template", str(TEMPLATE), "--payload",
                      '{"value1": 10, "value2": 20}', "--log-type", "Tail")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "30"
    assert REPORT.search(done.stdout), done.stdout
    assert "StatusCode: 200" in done.stderr


def test_the_logger_example_logs_its_message(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"message": "hello from a file"}')
    done = fastinvoke("invoke", "log", "--template", str(TEMPLATE), "--payload", f"@{event}",
                      "--log-type", "Tail")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "null"
    assert lines[1].startswith("START RequestId: ")
    assert lines[2] == "hello from a file"


def test_event_invocation_returns_202_and_still_runs() -> None:
    done = fastinvoke("invoke", "log", "--template", str(TEMPLATE), "--payload",
                      '{"message": "later"}', "--invocation-type", "Event")
    assert done.returncode == 0, done.stderr
    assert "StatusCode: 202" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "function 'nope' is not in"),
        (["add", "--payload", "{bad"], "InvalidRequestContentException: Could not parse"),
    ],
)
def test_bad_input_gets_a_clear_error(args: list[str], message: str) -> None:
    done = fastinvoke("invoke", args[0], "--template", str(TEMPLATE), *args[1:])
    assert done.returncode == 2
    assert message in done.stderr


def test_logs_reads_what_invocations_left_in_the_state_dir(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    for message in ("first message", "second message"):
        done = fastinvoke("invoke", "log", "--template", str(TEMPLATE), "--payload",
                          f'{{"message": "{message}"}}', "--state-dir", state)
        assert done.returncode == 0, done.stderr
    shown = fastinvoke("logs", "log", "--state-dir", state)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [line for line in lines if "message" in line] == ["first message", "second message"]
    assert sum(line.startswith("REPORT RequestId: ") for line in lines) == 2
    only = fastinvoke("logs", "log", "--state-dir", state, "--filter", '"second message"',
                      "--since", "1h")
    assert only.stdout == "second message\n"


def test_logs_filters_json_logs_as_cloudwatch_does(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource("Json", "json", "json_logger.handler"))
    state = str(tmp_path / "state")
    for event in ({"level": "ERROR", "message": "db down", "latency": 900},
                  {"level": "INFO", "message": "fine", "latency": 3},
                  {"level": "ERROR", "message": "retry", "latency": 12}):
        done = fastinvoke("invoke", "json", "--template", str(template), "--payload",
                          json.dumps(event), "--state-dir", state)
        assert done.returncode == 0, done.stderr
    shown = fastinvoke("logs", "json", "--state-dir", state, "--filter",
                       '{ $.level = "ERROR" && $.latency > 100 }')
    assert shown.returncode == 0, shown.stderr
    assert [json.loads(line)["message"] for line in shown.stdout.splitlines()] == ["db down"]
    bad = fastinvoke("logs", "json", "--state-dir", state, "--filter", "{ $.level = }")
    assert bad.returncode == 2 and "invalid filter pattern" in bad.stderr


def test_logs_says_what_to_do_when_there_are_none(tmp_path: Path) -> None:
    done = fastinvoke("logs", "log", "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert "run functions with --state-dir" in done.stderr


def test_billing_continues_across_runs_and_prints_the_bill(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    for _ in range(2):
        done = fastinvoke("invoke", "add", "--template", str(TEMPLATE), "--payload",
                          '{"value1": 1, "value2": 2}', "--state-dir", state)
        assert done.returncode == 0, done.stderr
    table = fastinvoke("billing", "--state-dir", state)
    assert table.returncode == 0, table.stderr
    add_row = next(line.split() for line in table.stdout.splitlines() if line.startswith("add"))
    assert add_row[:4] == ["add", "x86_64", "2", "0.0250"]  # 2 x 100 ms x 128 MB
    as_json = json.loads(fastinvoke("billing", "add", "--state-dir", state, "--json").stdout)
    assert as_json["requests"] == 2 and as_json["gb_seconds"] == "0.025"
    assert Decimal(as_json["cost"]) == 0  # within the free tier
    assert Decimal(as_json["gross_cost"]) == 2 * Decimal("0.0000002") + Decimal(
        "0.025") * Decimal("0.0000166667")
    missing = fastinvoke("billing", "nope", "--state-dir", state)
    assert missing.returncode == 2 and "no meters for 'nope'" in missing.stderr


def test_billing_and_logs_of_a_running_server(tmp_path: Path) -> None:
    """A server's meters are live only in it: ``billing --state-dir`` on its state dir says
    so and reads them there, ``--endpoint`` from anywhere; deleted functions stay in the
    totals, in one row of their own; ``logs --endpoint`` reads its log lines."""
    with serving(tmp_path) as server:
        client = server.client()
        for _ in range(3):
            client.invoke(FunctionName="echo", Payload=b'{"said": "hi"}')
        client.invoke(FunctionName="printer", Payload=b'{"message": "to the log"}')
        client.delete_function(FunctionName="printer")
        state = str(tmp_path / "state")
        table = fastinvoke("billing", "--state-dir", state)
        assert table.returncode == 0, table.stderr
        assert f"runs on {state}" in table.stderr and server.url in table.stderr
        rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()}
        assert rows["echo"][2] == "3" and "printer" not in rows
        assert rows["(1"][1:3] == ["deleted)", "1"]  # the deleted one, still billed
        assert rows["total"][1] == "4"
        as_json = json.loads(fastinvoke("billing", "--endpoint", server.url, "--json").stdout)
        assert as_json["requests"] == 4 and as_json["deleted"] == ["printer"]
        shown = fastinvoke("logs", "echo", "--endpoint", server.url, "--filter", "REPORT")
        assert shown.returncode == 0, shown.stderr
        assert sum(line.startswith("REPORT RequestId: ") for line in
                   shown.stdout.splitlines()) == 3
        bad = fastinvoke("logs", "echo", "--endpoint", server.url, "--filter", "{ $.a = }")
        assert bad.returncode != 0 and "invalid filter pattern" in bad.stderr
    # Stopped, the server's meters are in the state dir.
    after = fastinvoke("billing", "--state-dir", str(tmp_path / "state"))
    assert after.returncode == 0 and "runs on" not in after.stderr


def test_a_templates_event_invoke_config_sends_failures_to_its_queue(tmp_path: Path) -> None:
    """EventInvokeConfig and a queue of the template: the record lands in the queue's
    JSON-lines file in the state dir."""
    functions = ROOT / "tests" / "functions"
    template = tmp_path / "template.yaml"
    template.write_text(f"""
Resources:
  Failures:
    Type: AWS::SQS::Queue
  Boom:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {functions}
      Handler: raise_.handler
      Runtime: python3.{sys.version_info.minor}
      EventInvokeConfig:
        MaximumRetryAttempts: 0
        DestinationConfig:
          OnFailure: {{Type: SQS, Destination: !GetAtt Failures.Arn}}
""")
    done = fastinvoke("invoke", "Boom", "--template", str(template), "--invocation-type",
                      "Event", "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    message = json.loads((tmp_path / "state/destinations/sqs/Failures.jsonl").read_text())
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["responsePayload"]["errorType"] == "ValueError"
