"""SQS event source mappings against a real SQS-compatible server (moto's, started by
the tests): the mapping operations over boto3, batches delivered to a function and their
messages deleted, partial batch failures retried and redriven to a dead-letter queue,
a SAM template's SQS event, and an endpoint that is down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import function_resource, stderr_line_with, wait_until
from http_server import Server, serving
from sqs_server import free_port, sqs

ARN = "arn:aws:sqs:us-east-1:123456789012:"


pytestmark = pytest.mark.usefixtures("moto_credentials")


@pytest.fixture
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


def sqs_event(properties: str = "") -> str:
    """The Worker's Events: an SQS event of the Jobs queue with more ``properties``."""
    return ("      Events:\n        Jobs:\n          Type: SQS\n          Properties:\n"
            "            Queue: !GetAtt Jobs.Arn\n" + properties)


def batch_template(directory: Path, events: str = "") -> Path:
    template = directory / "template.yaml"
    template.write_text(
        f"Resources:\n  Jobs:\n    Type: AWS::SQS::Queue\n"
        f"    Properties: {{QueueName: {directory.name}-jobs}}\n"
        + function_resource("Worker", "worker", "sqs_batch.handler", events,
                            record_to=directory / "record.jsonl"))
    return template


def batches(directory: Path) -> list[dict[str, Any]]:
    record = directory / "record.jsonl"
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() \
        else []


def queue(endpoint: str, name: str, **attributes: str) -> str:
    return sqs(endpoint).create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def counts(endpoint: str, url: str) -> tuple[int, int]:
    found = sqs(endpoint).get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return (int(found["ApproximateNumberOfMessages"]),
            int(found["ApproximateNumberOfMessagesNotVisible"]))


def test_the_mapping_operations(endpoint: str, tmp_path: Path) -> None:
    queue(endpoint, "ops")
    with serving(tmp_path, "--sqs-endpoint", endpoint) as server:
        client = server.client()
        made = client.create_event_source_mapping(
            EventSourceArn=ARN + "ops", FunctionName="echo", BatchSize=5,
            ScalingConfig={"MaximumConcurrency": 2})
        assert made["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert (made["State"], made["BatchSize"], made["EventSourceArn"]) == (
            "Creating", 5, ARN + "ops")
        assert made["FunctionArn"].endswith(":function:echo")
        got = client.get_event_source_mapping(UUID=made["UUID"])
        assert (got["State"], got["ScalingConfig"]) == ("Enabled", {"MaximumConcurrency": 2})
        listed = client.list_event_source_mappings(FunctionName="echo")["EventSourceMappings"]
        assert [mapping["UUID"] for mapping in listed] == [made["UUID"]]
        assert client.list_event_source_mappings(
            EventSourceArn=ARN + "other")["EventSourceMappings"] == []
        changed = client.update_event_source_mapping(UUID=made["UUID"], Enabled=False,
                                                     BatchSize=50,
                                                     MaximumBatchingWindowInSeconds=2)
        assert (changed["BatchSize"], changed["MaximumBatchingWindowInSeconds"]) == (50, 2)
        assert client.get_event_source_mapping(UUID=made["UUID"])["State"] == "Disabled"
        with pytest.raises(client.exceptions.InvalidParameterValueException,
                           match="greater than 0 if maximum batch size is greater than 10"):
            client.create_event_source_mapping(EventSourceArn=ARN + "ops",
                                               FunctionName="echo", BatchSize=20)
        with pytest.raises(client.exceptions.InvalidParameterValueException,
                           match="fastinvoke maps SQS queues"):
            client.create_event_source_mapping(
                EventSourceArn="arn:aws:mq:us-east-1:123456789012:broker:b:b-1234",
                FunctionName="echo")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.create_event_source_mapping(EventSourceArn=ARN + "ops", FunctionName="nope")
        assert client.delete_event_source_mapping(UUID=made["UUID"])["State"] == "Deleting"
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_event_source_mapping(UUID=made["UUID"])
        client.close()


def test_without_an_endpoint_a_mapping_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        client = server.client()
        with pytest.raises(client.exceptions.InvalidParameterValueException,
                           match="start it with --sqs-endpoint URL"):
            client.create_event_source_mapping(EventSourceArn=ARN + "q", FunctionName="echo")
        assert client.list_event_source_mappings()["EventSourceMappings"] == []
        client.close()


def test_batches_reach_the_function_and_leave_the_queue(endpoint: str, tmp_path: Path) -> None:
    name = f"{tmp_path.name}-jobs"
    url = queue(endpoint, name)
    template = batch_template(tmp_path, sqs_event(
        "            BatchSize: 10\n            MaximumBatchingWindowInSeconds: 1\n"))
    client = sqs(endpoint)
    for start in range(0, 25, 5):
        client.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "MessageBody": f"job {n}"} for n in range(start, start + 5)])
    server = Server(tmp_path / "state", "--sqs-endpoint", endpoint, template=template)
    try:
        wait_until(lambda: sum(len(b["bodies"]) for b in batches(tmp_path)) >= 25, timeout=60)
        wait_until(lambda: counts(endpoint, url) == (0, 0), timeout=30)
    finally:
        code, err = server.stop()
    assert code == 0, err
    delivered = batches(tmp_path)
    assert sorted(body for batch in delivered for body in batch["bodies"]) == sorted(
        f"job {n}" for n in range(25))  # each once
    assert all(1 <= len(batch["bodies"]) <= 10 for batch in delivered)
    assert {batch["source"] for batch in delivered} == {"aws:sqs"}


def test_partial_failures_are_retried_then_redriven(endpoint: str, tmp_path: Path) -> None:
    """With ReportBatchItemFailures only the failed records stay; the queue's redrive
    policy moves them to its dead-letter queue after two receives."""
    name = f"{tmp_path.name}-jobs"
    dead = queue(endpoint, f"{name}-dlq")
    url = queue(endpoint, name, VisibilityTimeout="1", RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": ARN + f"{name}-dlq", "maxReceiveCount": "2"}))
    template = batch_template(tmp_path, sqs_event(
        "            FunctionResponseTypes: [ReportBatchItemFailures]\n"))
    client = sqs(endpoint)
    client.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(n), "MessageBody": body}
        for n, body in enumerate(["ok 1", "fail 1", "ok 2", "fail 2", "ok 3"])])
    server = Server(tmp_path / "state", "--sqs-endpoint", endpoint, template=template)
    try:
        def redriven() -> list[str]:
            got = client.receive_message(QueueUrl=dead, MaxNumberOfMessages=10,
                                         WaitTimeSeconds=1).get("Messages", [])
            return sorted(message["Body"] for message in got) if len(got) == 2 else []

        assert wait_until(redriven, timeout=60) == ["fail 1", "fail 2"]
        wait_until(lambda: counts(endpoint, url) == (0, 0), timeout=30)
    finally:
        code, err = server.stop()
    assert code == 0, err
    bodies = [body for batch in batches(tmp_path) for body in batch["bodies"]]
    assert sorted(body for body in bodies if body.startswith("ok")) == ["ok 1", "ok 2", "ok 3"]
    assert sorted(body for body in bodies if body.startswith("fail")) == [
        "fail 1", "fail 1", "fail 2", "fail 2"]  # received twice each, then redriven


def test_an_endpoint_that_is_down_is_reported_and_serving_goes_on(tmp_path: Path) -> None:
    template = batch_template(tmp_path, sqs_event())
    down = f"http://127.0.0.1:{free_port()}"
    server = Server(tmp_path / "state", "--sqs-endpoint", down, template=template)
    try:
        line = stderr_line_with(server.process, "SQS mapping")
        assert f"of worker: cannot read {ARN}{tmp_path.name}-jobs at {down}" in line
        assert line.rstrip().endswith("retrying")
        client = server.client()
        assert client.invoke(FunctionName="worker", Payload=json.dumps({"Records": [
            {"body": "by hand", "messageId": "m", "eventSource": "aws:sqs"}]}))[
            "StatusCode"] == 200
        client.close()
    finally:
        code, err = server.stop()
    assert code == 0, err


def test_event_destinations_and_dead_letters_reach_real_queues(endpoint: str,
                                                             tmp_path: Path) -> None:
    """With an SQS endpoint, an Event invocation's OnSuccess record and a failed one's
    dead letter go to the queues themselves, not to their files."""
    prefix = tmp_path.name
    done, dead = queue(endpoint, f"{prefix}-done"), queue(endpoint, f"{prefix}-dead")
    with serving(tmp_path, "--sqs-endpoint", endpoint) as server:
        client = server.client()
        client.put_function_event_invoke_config(
            FunctionName="echo", DestinationConfig={
                "OnSuccess": {"Destination": ARN + f"{prefix}-done"}})
        client.update_function_configuration(
            FunctionName="raises", DeadLetterConfig={"TargetArn": ARN + f"{prefix}-dead"})
        assert client.get_function_configuration(FunctionName="raises")["DeadLetterConfig"] == {
            "TargetArn": ARN + f"{prefix}-dead"}
        client.put_function_event_invoke_config(FunctionName="raises", MaximumRetryAttempts=0)
        client.invoke(FunctionName="echo", InvocationType="Event", Payload=b'{"n": 1}')
        client.invoke(FunctionName="raises", InvocationType="Event", Payload=b'{"n": 2}')

        def one(url: str) -> dict[str, Any] | None:
            got = sqs(endpoint).receive_message(QueueUrl=url, WaitTimeSeconds=1,
                                                MessageAttributeNames=["All"]).get("Messages")
            return got[0] if got else None

        success = wait_until(lambda: one(done), timeout=30)
        record = json.loads(success["Body"])
        assert record["requestPayload"] == {"n": 1}
        assert record["requestContext"]["condition"] == "Success"
        letter = wait_until(lambda: one(dead), timeout=30)
        assert json.loads(letter["Body"]) == {"n": 2}
        assert set(letter["MessageAttributes"]) == {"RequestID", "ErrorCode", "ErrorMessage"}
        client.close()
    assert not (tmp_path / "state" / "destinations").exists()  # no file fallback used
