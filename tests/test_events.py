"""Event invocations: retries, destinations and dead letters in Lambda's shapes, per-function
queues, waiting for concurrency, settings, and surviving a restart (docs/lambda-behaviour.md,
"Asynchronous invocation")."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from helpers import FUNCTIONS, MakeFunction, MakeInvoker, wait_until

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.errors import (
    InvalidParameterValueException,
    ResourceNotFoundException,
    TooManyRequestsException,
    ValidationException,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SHORT_DELAYS = (0.2, 0.4)  # instead of Lambda's 1 and 2 minutes


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_bytes().splitlines()] \
        if path.exists() else []


def first_line(path: Path, timeout: float = 30.0) -> bytes:
    """The first record a sink received (waiting for it to arrive)."""
    wait_until(lambda: path.exists() and path.read_bytes().endswith(b"\n"), timeout,
               message=f"nothing delivered to {path}")
    return path.read_bytes().splitlines()[0]


def make_recorder(make_function: MakeFunction, tmp_path: Path, invoker: Invoker,
                  **config: Any) -> tuple[str, Path]:
    """A function that writes down every attempt (tests/functions/recorder.py)."""
    attempts = tmp_path / f"attempts-{len(list(tmp_path.glob('attempts-*')))}.jsonl"
    attempts.touch()
    attempts.unlink()
    name = make_function("recorder.handler", invoker=invoker,
                         env={"RECORD_TO": str(attempts)}, **config)
    return name, attempts


def test_success_destination_gets_lambdas_record_byte_for_byte(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker()
    name, attempts = make_recorder(make_function, tmp_path, invoker)
    sink = tmp_path / "success.jsonl"
    invoker.event_invoke_config(name, on_success=f"file://{sink}")

    result = invoker.invoke(name, b'{"mode": "success"}', invocation_type="Event")

    assert (result.status_code, result.payload, result.function_error) == (202, b"", None)
    raw = first_line(sink)
    record = json.loads(raw)
    assert list(record) == ["version", "timestamp", "requestContext", "requestPayload",
                            "responseContext", "responsePayload"]
    assert TIMESTAMP.match(record["timestamp"])
    assert record["requestContext"] == {
        "requestId": result.request_id,
        "functionArn": invoker.function_arn(name) + ":$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"mode": "success"}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"mode": "success"}
    # Compact framing; the event and the response spliced in as they were, never re-encoded.
    context = (f'{{"requestId":"{result.request_id}","functionArn":'
               f'"{invoker.function_arn(name)}:$LATEST","condition":"Success",'
               '"approximateInvokeCount":1}')
    assert raw.decode() == (
        f'{{"version":"1.0","timestamp":"{record["timestamp"]}","requestContext":{context},'
        '"requestPayload":{"mode": "success"},'
        '"responseContext":{"statusCode":200,"executedVersion":"$LATEST"},'
        '"responsePayload":{"mode": "success"}}')
    assert [attempt["request_id"] for attempt in lines(attempts)] == [result.request_id]


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_a_failing_event_is_retried_with_the_same_request_id_then_sent_to_on_failure(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path,
        retries: int) -> None:
    invoker = make_invoker(event_retry_delays_s=SHORT_DELAYS)
    name, attempts = make_recorder(make_function, tmp_path, invoker)
    sink = tmp_path / "failure.jsonl"
    invoker.event_invoke_config(name, maximum_retry_attempts=retries,
                                on_failure=f"file://{sink}")

    result = invoker.invoke(name, {"fail": True, "id": 7}, invocation_type="Event")

    record = json.loads(first_line(sink))
    assert record["requestContext"] == {
        "requestId": result.request_id,
        "functionArn": invoker.function_arn(name) + ":$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": retries + 1,
    }
    assert record["requestPayload"] == {"fail": True, "id": 7}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                         "functionError": "Unhandled"}
    error = record["responsePayload"]
    assert (error["errorType"], error["errorMessage"], error["requestId"]) == (
        "RuntimeError", "failing as asked: 7", result.request_id)
    runs = lines(attempts)
    assert [run["request_id"] for run in runs] == [result.request_id] * (retries + 1)
    for before, after, delay in zip(runs, runs[1:], SHORT_DELAYS, strict=False):
        assert after["at"] - before["at"] >= delay  # never earlier than the configured delay
    meter = invoker.meter(name)
    assert (meter["invocations"], meter["errors"]) == (retries + 1, retries + 1)


def test_a_timeout_is_a_function_error_and_is_retried(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker(event_retry_delays_s=SHORT_DELAYS)
    name = make_function("counter.handler", invoker=invoker, timeout_s=1)
    sink = tmp_path / "failure.jsonl"
    invoker.event_invoke_config(name, maximum_retry_attempts=1, on_failure=str(sink))

    result = invoker.invoke(name, {"hang": True}, invocation_type="Event")

    record = json.loads(first_line(sink))
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["responsePayload"] == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds",
    }
    assert invoker.meter(name)["timeouts"] == 2


def test_zero_reserved_concurrency_sends_events_straight_to_on_failure(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker()
    name, attempts = make_recorder(make_function, tmp_path, invoker, reserved_concurrency=0)
    sink = tmp_path / "failure.jsonl"
    invoker.event_invoke_config(name, on_failure=f"file://{sink}")

    result = invoker.invoke(name, {"x": 1}, invocation_type="Event")

    assert result.status_code == 202
    record = json.loads(first_line(sink))
    assert list(record) == ["version", "timestamp", "requestContext", "requestPayload"]
    assert record["requestContext"]["condition"] == "ZeroReservedConcurrency"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert not attempts.exists()
    assert invoker.meter(name)["invocations"] == 0
    with pytest.raises(TooManyRequestsException) as raised:
        invoker.invoke(name, {"x": 2})
    assert raised.value.fields["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_dead_letter_queue_gets_the_original_event_and_lambdas_attributes(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker()
    name, _ = make_recorder(make_function, tmp_path, invoker,
                            dead_letter_target="arn:aws:sqs:us-east-1:123456789012:dlq")
    invoker.event_invoke_config(name, maximum_retry_attempts=0)
    event = b'{"fail":  true, "id": "dead"}'  # odd spacing: the body must be unchanged

    result = invoker.invoke(name, event, invocation_type="Event")

    message = json.loads(first_line(Path(invoker.state_dir, "destinations/sqs/dlq.jsonl")))
    assert message["Body"] == event.decode()
    assert message["MessageAttributes"] == {
        "RequestID": {"DataType": "String", "StringValue": result.request_id},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {"DataType": "String", "StringValue": "failing as asked: dead"},
    }


def test_a_function_destination_is_invoked_with_the_record(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker()
    target, received = make_recorder(make_function, tmp_path, invoker)
    name = make_function("raise_.handler", invoker=invoker)
    invoker.event_invoke_config(name, maximum_retry_attempts=0,
                                on_failure=invoker.function_arn(target))

    result = invoker.invoke(name, {"n": 1}, invocation_type="Event")

    first_line(received)
    record = lines(received)[0]["event"]
    assert record["requestContext"]["requestId"] == result.request_id
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["responsePayload"]["errorType"] == "ValueError"


def test_eventbridge_and_sns_destinations_wrap_the_record_as_those_services_do(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker()
    bus = "arn:aws:events:us-east-1:123456789012:event-bus/default"
    topic = "arn:aws:sns:us-east-1:123456789012:failures"
    good = make_function("ok.handler", invoker=invoker)
    bad = make_function("raise_.handler", invoker=invoker)
    invoker.event_invoke_config(good, on_success=bus)
    invoker.event_invoke_config(bad, maximum_retry_attempts=0, on_failure=topic)

    invoker.invoke(good, {}, invocation_type="Event")
    invoker.invoke(bad, {}, invocation_type="Event")

    event = json.loads(first_line(Path(invoker.state_dir, "destinations/events/default.jsonl")))
    assert event["detail-type"] == "Lambda Function Invocation Result - Success"
    assert (event["source"], event["resources"]) == (
        "lambda", [bus, invoker.function_arn(good) + ":$LATEST"])
    assert event["detail"]["requestContext"]["condition"] == "Success"
    notification = json.loads(first_line(Path(invoker.state_dir,
                                              "destinations/sns/failures.jsonl")))
    assert (notification["Type"], notification["TopicArn"]) == ("Notification", topic)
    assert json.loads(notification["Message"])["requestContext"]["condition"] == \
        "RetriesExhausted"


def test_one_functions_flood_does_not_hold_back_anothers_events(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker(max_workers=1)
    flooded = make_function("sleeper.handler", invoker=invoker)
    for i in range(300):  # 300 x 20 ms on one worker: seconds of backlog
        invoker.invoke(flooded, {"seconds": 0.02, "id": i}, invocation_type="Event")
    other, attempts = make_recorder(make_function, tmp_path, invoker)

    invoker.invoke(other, {"me": "too"}, invocation_type="Event")

    first_line(attempts)
    assert invoker.event_stats(flooded)["queued"] > 0


def test_events_wait_for_concurrency_instead_of_being_throttled(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker(account_limit=1)
    gate = make_function("gate.handler", invoker=invoker, timeout_s=60)
    name, attempts = make_recorder(make_function, tmp_path, invoker)
    opened = tmp_path / "gate-open"
    holder = threading.Thread(target=invoker.invoke, args=(gate, {"gate": str(opened)}))
    holder.start()
    try:
        wait_until(lambda: invoker.meter(gate)["concurrent"] == 1)
        with pytest.raises(TooManyRequestsException) as raised:
            invoker.invoke(name, {"sync": True})
        assert raised.value.fields["Reason"] == "ConcurrentInvocationLimitExceeded"

        result = invoker.invoke(name, {"async": True}, invocation_type="Event")

        assert result.status_code == 202
        assert invoker.event_stats(name)["queued"] == 1
        assert not attempts.exists()
    finally:
        opened.touch()
        holder.join(timeout=20)
    assert not holder.is_alive(), "the holder never got its answer"
    first_line(attempts)
    assert lines(attempts)[0]["request_id"] == result.request_id
    assert invoker.meter(name)["throttles"] == 1  # the synchronous call only


def test_asyncio_callers_share_commits_and_every_event_runs(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker(state_dir=tmp_path / "state", max_workers=2)
    name, attempts = make_recorder(make_function, tmp_path, invoker)

    async def flood() -> list[Any]:
        return await asyncio.gather(*(invoker.ainvoke(name, {"i": i}, invocation_type="Event")
                                      for i in range(300)))

    results = asyncio.run(flood())

    assert {result.status_code for result in results} == {202}
    assert invoker.wait_for_events(name, timeout_s=60)
    assert sorted(run["request_id"] for run in lines(attempts)) == \
        sorted(result.request_id for result in results)


def test_provisioned_workers_invocations_are_counted_separately(
        invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("ok.handler", provisioned=1)
    for _ in range(3):
        invoker.invoke(name, {})
    meter = invoker.meter(name)
    assert (meter["invocations"], meter["provisioned_invocations"]) == (3, 3)


# -- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize(("settings", "error", "message"), [
    ({"maximum_retry_attempts": 3}, ValidationException,
     "Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have "
     "value less than or equal to 2"),
    ({"maximum_event_age_s": 59}, ValidationException,
     "Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have "
     "value greater than or equal to 60"),
    ({"maximum_event_age_s": 21_601}, ValidationException,
     "Member must have value less than or equal to 21600"),
    ({}, InvalidParameterValueException,
     "You must specify at least one of error handling or destination setting."),
    ({"on_success": "arn:aws:s4:::nope"}, InvalidParameterValueException,
     "The destination ARN arn:aws:s4:::nope is invalid"),
])
def test_bad_event_settings_are_refused_as_lambda_refuses_them(
        invoker: Invoker, make_function: MakeFunction, settings: dict[str, Any],
        error: type[Exception], message: str) -> None:
    name = make_function("ok.handler")
    with pytest.raises(error, match=re.escape(message)):
        invoker.event_invoke_config(name, **settings)


def test_a_function_cannot_be_its_own_destination(invoker: Invoker,
                                                  make_function: MakeFunction) -> None:
    name = make_function("ok.handler")
    with pytest.raises(InvalidParameterValueException,
                       match="You can't specify the function as a destination for itself."):
        invoker.event_invoke_config(name, on_failure=invoker.function_arn(name))


def test_event_settings_put_update_get_delete(invoker: Invoker,
                                              make_function: MakeFunction) -> None:
    name = make_function("ok.handler")
    with pytest.raises(ResourceNotFoundException, match=re.escape(
            f"The function {invoker.function_arn(name)}:$LATEST doesn't have an "
            "EventInvokeConfig")):
        invoker.get_event_invoke_config(name)
    with pytest.raises(ResourceNotFoundException, match="The function doesn't exist."):
        invoker.event_invoke_config("missing", maximum_retry_attempts=1)

    invoker.event_invoke_config(name, maximum_retry_attempts=1, on_success="arn:aws:sqs:"
                                "us-east-1:123456789012:q")
    updated = invoker.update_event_invoke_config(name, maximum_event_age_s=120)
    assert (updated.maximum_retry_attempts, updated.maximum_event_age_s, updated.on_success) == (
        1, 120, "arn:aws:sqs:us-east-1:123456789012:q")
    replaced = invoker.event_invoke_config(name, maximum_event_age_s=300)
    assert (replaced.maximum_retry_attempts, replaced.on_success) == (None, None)
    assert invoker.get_event_invoke_config(name) == replaced
    invoker.delete_event_invoke_config(name)
    with pytest.raises(ResourceNotFoundException):
        invoker.get_event_invoke_config(name)


def test_a_dead_letter_target_must_be_a_queue_or_topic(invoker: Invoker,
                                                        make_function: MakeFunction) -> None:
    with pytest.raises(InvalidParameterValueException, match="dead-letter target"):
        make_function("ok.handler", dead_letter_target="arn:aws:lambda:us-east-1:"
                      "123456789012:function:other")


# -- restarts --------------------------------------------------------------------------------

def test_functions_settings_and_a_delayed_retry_survive_a_restart_and_expire_by_age(
        make_invoker: MakeInvoker, tmp_path: Path) -> None:
    state, sink, attempts = tmp_path / "state", tmp_path / "failure.jsonl", tmp_path / "a.jsonl"
    first = make_invoker(state_dir=state, event_retry_delays_s=(3600,))
    first.create_function(FunctionConfig(name="rec", handler="recorder.handler", code=FUNCTIONS,
                                         env={"RECORD_TO": str(attempts)}))
    first.event_invoke_config("rec", maximum_event_age_s=60, on_failure=f"file://{sink}")
    result = first.invoke("rec", {"fail": True, "id": 1}, invocation_type="Event")
    wait_until(lambda: first.event_stats("rec")["delayed"] == 1)
    first.close()
    # Two minutes pass in the store: the event was accepted 120 s ago, its retry is due.
    with sqlite3.connect(state / "events.db") as db:
        db.execute("UPDATE events SET enqueued_ms = enqueued_ms - 120000, due_ms = 1")

    second = make_invoker(state_dir=state, event_retry_delays_s=(3600,))

    assert second.get_event_invoke_config("rec").maximum_event_age_s == 60
    record = json.loads(first_line(sink))
    assert record["requestContext"]["requestId"] == result.request_id
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"]["functionError"] == "Unhandled"  # the last attempt's
    assert record["responsePayload"]["errorMessage"] == "failing as asked: 1"
    assert len(lines(attempts)) == 1  # too old to run again
    assert second.event_stats()["recovered"] == 1


_FRONT_END = """
import sys
from fastinvoke import FunctionConfig, Invoker
state, functions, record_to, count, end = sys.argv[1:6]
invoker = Invoker(state, max_workers=2, sandbox=False)  # recorder writes a host file
invoker.put_function(FunctionConfig(name="rec", handler="recorder.handler", code=functions,
                                    env={"RECORD_TO": record_to}))
for i in range(int(count)):
    result = invoker.invoke("rec", {"i": i}, invocation_type="Event")
    sys.stdout.write(result.request_id + "\\n")
    sys.stdout.flush()
if end == "close":
    invoker.close()  # at once: most events are still queued
"""


def _front_end(state: Path, attempts: Path, count: int, end: str) -> Any:
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-c", _FRONT_END, str(state), FUNCTIONS,
                             str(attempts), str(count), end],
                            stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)


def _ran(attempts: Path) -> Counter[str]:
    return Counter(run["request_id"] for run in lines(attempts))


@pytest.mark.slow
def test_every_accepted_event_runs_after_the_front_end_is_killed(
        make_invoker: MakeInvoker, tmp_path: Path, subreaper: None) -> None:
    import signal
    state, attempts = tmp_path / "state", tmp_path / "attempts.jsonl"
    front_end = _front_end(state, attempts, 10_000, "kill")
    accepted = []
    while len(accepted) < 5_000:
        line = front_end.stdout.readline()
        assert line, "the front-end ended before accepting 5,000 events"
        accepted.append(line.decode().strip())
    front_end.send_signal(signal.SIGKILL)
    accepted += [line.decode().strip() for line in front_end.stdout]  # printed before the kill
    front_end.stdout.close()
    front_end.wait()

    restarted = make_invoker(state_dir=state, max_workers=2)

    assert restarted.wait_for_events(timeout_s=120)
    ran = _ran(attempts)
    missing = set(accepted) - set(ran)
    assert not missing, f"{len(missing)} accepted events never ran"
    duplicates = sum(count - 1 for count in ran.values())
    stats = restarted.event_stats()
    assert stats["recovered"] > 0
    assert duplicates <= stats["redelivered"], (duplicates, stats)
    print(f"accepted {len(accepted)}, ran {len(ran)}, duplicates {duplicates}, {stats}")


@pytest.mark.slow
def test_after_a_clean_close_queued_events_run_once_in_the_next_run(
        make_invoker: MakeInvoker, tmp_path: Path) -> None:
    state, attempts = tmp_path / "state", tmp_path / "attempts.jsonl"
    front_end = _front_end(state, attempts, 3_000, "close")
    accepted = [line.decode().strip() for line in front_end.stdout]
    front_end.stdout.close()
    assert front_end.wait() == 0 and len(accepted) == 3_000

    restarted = make_invoker(state_dir=state, max_workers=2)

    assert restarted.wait_for_events(timeout_s=120)
    ran = _ran(attempts)
    assert set(ran) == set(accepted)
    assert max(ran.values()) == 1  # no duplicates
    assert restarted.event_stats()["redelivered"] == 0


def test_reserved_concurrency_one_runs_events_one_at_a_time(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker(max_workers=4)
    name = make_function("sleeper.handler", invoker=invoker, reserved_concurrency=1)
    for i in range(20):
        invoker.invoke(name, {"seconds": 0.01, "id": i}, invocation_type="Event")
    assert invoker.wait_for_events(name, timeout_s=60)
    meter = invoker.meter(name)
    assert (meter["invocations"], meter["peak_concurrent"], meter["throttles"]) == (20, 1, 0)


def test_wait_for_events_returns_only_when_every_event_has_run(
        make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    """Events between two of the queue's moments (being claimed in the store) still count
    as queued: waiting must not end while a batch is in transit."""
    invoker = make_invoker(max_workers=2, durable_events=True)
    name = make_function("ok.handler", invoker=invoker)
    for _ in range(5000):
        invoker.invoke(name, {}, invocation_type="Event")
    assert invoker.wait_for_events(name, timeout_s=120)
    assert invoker.meter(name)["invocations"] == 5000


def test_a_redeployed_function_keeps_its_queued_events_and_runs_them_as_redeployed(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = make_invoker(account_limit=1)
    gate = make_function("gate.handler", invoker=invoker, timeout_s=60)
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    config = FunctionConfig(name="rec", handler="recorder.handler", code=FUNCTIONS,
                            env={"RECORD_TO": str(before)})
    invoker.put_function(config)
    opened = tmp_path / "open"
    holder = threading.Thread(target=invoker.invoke, args=(gate, {"gate": str(opened)}))
    holder.start()
    try:
        wait_until(lambda: invoker.meter(gate)["concurrent"] == 1)
        accepted = [invoker.invoke("rec", {"i": i}, invocation_type="Event").request_id
                    for i in range(5)]
        invoker.put_function(msgspec.structs.replace(config, env={"RECORD_TO": str(after)}))
        assert invoker.event_stats("rec")["queued"] == 5
    finally:
        opened.touch()
        holder.join(timeout=20)
    assert not holder.is_alive(), "the holder never got its answer"
    assert invoker.wait_for_events("rec", timeout_s=60)
    assert not before.exists()
    assert sorted(run["request_id"] for run in lines(after)) == sorted(accepted)


def test_events_waiting_for_concurrency_when_it_goes_to_zero_are_sent_to_on_failure(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    """Claimed events waiting for the function's one slot, then its reservation set to 0:
    they can never run, so they go to the failure destination at once, as Lambda sends
    them (they waited for ever before, and close() for its whole grace)."""
    invoker = make_invoker()
    name = make_function("gate.handler", invoker=invoker, reserved_concurrency=1)
    sink = tmp_path / "failure.jsonl"
    invoker.event_invoke_config(name, on_failure=f"file://{sink}")
    gate = tmp_path / "gate"
    holder = threading.Thread(target=invoker.invoke, args=(name, {"gate": str(gate)}))
    holder.start()
    # The states this test is about are the queue's own, not observable through the API.
    wait_until(lambda: invoker._functions.pool(name).active == 1)  # the holder runs
    for n in range(3):
        invoker.invoke(name, {"gate": str(gate), "n": n}, invocation_type="Event")
    wait_until(lambda: len(invoker._events.lane(name).claimed) == 3)  # waiting for the slot

    invoker.put_function_concurrency(name, 0)

    wait_until(lambda: len(lines(sink)) == 3, message="the waiting events never settled")
    assert {line["requestContext"]["condition"] for line in lines(sink)} == {
        "ZeroReservedConcurrency"}
    assert sorted(line["requestPayload"]["n"] for line in lines(sink)) == [0, 1, 2]
    gate.touch()
    holder.join(timeout=20)
    assert not holder.is_alive(), "the holder never got its answer"
    assert invoker.wait_for_events(name, timeout_s=10)
