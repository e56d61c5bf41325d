"""DynamoDB Streams and Kinesis event source mappings in ``fastinvoke serve``: records of a
real DynamoDB-/Kinesis-compatible server (moto's standalone server) reach the function in
order, batch by batch, with Lambda's error handling (bisecting, retries, partial batch
responses, the on-failure destination), and a restart resumes where the last run stopped.
boto3 makes the tables, streams and records; a real server invokes real workers."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import function_resource, stderr_line_with, wait_until
from http_server import Server
from sqs_server import client, free_port

ACCOUNT = "123456789012"
pytestmark = pytest.mark.usefixtures("moto_credentials")


def _recorded(path: Path) -> list[dict[str, Any]]:
    """The handler's lines, but one it is still writing."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]


def _delivered(path: Path) -> list[str]:
    """The items of every batch that succeeded, in the order they ran."""
    return [item for line in _recorded(path) if not line["failed"] for item in line["items"]]


def _table(endpoint: str, name: str) -> Any:
    dynamodb = client("dynamodb", endpoint)
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return dynamodb


def _table_template(directory: Path, lid: str, table: str, batch_size: int,
                    record_to: Path) -> Path:
    """A template whose function ``lid`` reads, from its start, the stream of the
    template's own table ``table`` (logical id ``<lid>Table``)."""
    template = directory / "template.yaml"
    template.write_text("Resources:\n" + function_resource(
        lid, table, "stream_batch.handler", record_to=record_to, properties=f"""\
      Events:
        Changes:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt {lid}Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: {batch_size}
""") + f"  {lid}Table:\n    Type: AWS::DynamoDB::Table\n    Properties:\n"
        f"      TableName: {table}\n")
    return template


def _put(dynamodb: Any, table: str, *ids: str) -> None:
    for item in ids:
        dynamodb.put_item(TableName=table, Item={"id": {"S": item}})


def test_a_dynamodb_stream_is_delivered_in_order_and_resumed_after_a_restart(
        tmp_path: Path, moto_endpoint: str) -> None:
    record_to = tmp_path / "batches.jsonl"
    template = _table_template(tmp_path, "Orders", "orders", 2, record_to)
    endpoint = moto_endpoint
    dynamodb = _table(endpoint, "orders")
    _put(dynamodb, "orders", "1", "2", "3", "4", "5")
    state = tmp_path / "state"
    server = Server(state, "--dynamodb-endpoint", endpoint, template=template)
    try:
        wait_until(lambda: len(_delivered(record_to)) >= 5, timeout=30)
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert _delivered(record_to) == ["1", "2", "3", "4", "5"]
    batches = _recorded(record_to)
    assert all(len(line["items"]) <= 2 for line in batches)
    assert all(line["names"] == ["INSERT"] * len(line["items"]) for line in batches)
    assert batches[0]["sources"][0].startswith(
        f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders/stream/")
    # Changes made while the server is down are read when it is back, from where it
    # stopped: nothing twice.
    _put(dynamodb, "orders", "6", "7")
    dynamodb.delete_item(TableName="orders", Key={"id": {"S": "1"}})
    server = Server(state, "--dynamodb-endpoint", endpoint, template=template)
    try:
        wait_until(lambda: len(_delivered(record_to)) >= 8, timeout=30)
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert _delivered(record_to) == ["1", "2", "3", "4", "5", "6", "7", "1"]
    assert [name for line in _recorded(record_to)[len(batches):] for name in line["names"]] \
        == ["INSERT", "INSERT", "REMOVE"]


def test_a_failing_kinesis_batch_is_bisected_retried_and_described_on_failure(
        tmp_path: Path, moto_endpoint: str) -> None:
    record_to = tmp_path / "batches.jsonl"
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource(
        "Clicks", "clicks", "stream_batch.handler", record_to=record_to))
    endpoint = moto_endpoint
    kinesis = client("kinesis", endpoint)
    kinesis.create_stream(StreamName="clicks", ShardCount=1)
    stream = kinesis.describe_stream_summary(
        StreamName="clicks")["StreamDescriptionSummary"]["StreamARN"]
    queues = client("sqs", endpoint)
    queue_url = queues.create_queue(QueueName="click-failures")["QueueUrl"]
    queue = f"arn:aws:sqs:us-east-1:{ACCOUNT}:click-failures"
    sequences = {data: kinesis.put_record(StreamName="clicks", Data=data.encode(),
                                          PartitionKey="user-1")["SequenceNumber"]
                 for data in ("a", "b", "poison", "d")}
    server = Server(tmp_path / "state", "--kinesis-endpoint", endpoint, "--sqs-endpoint",
                    endpoint, template=template)
    try:
        lambda_ = server.client()
        with pytest.raises(ClientError, match="StartingPosition is required"):
            lambda_.create_event_source_mapping(EventSourceArn=stream, FunctionName="clicks")
        mapping = lambda_.create_event_source_mapping(
            EventSourceArn=stream, FunctionName="clicks", StartingPosition="TRIM_HORIZON",
            BatchSize=4, BisectBatchOnFunctionError=True, MaximumRetryAttempts=1,
            DestinationConfig={"OnFailure": {"Destination": queue}})
        assert mapping["StartingPosition"] == "TRIM_HORIZON"
        assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": queue}}
        messages: list[dict[str, Any]] = []

        def described() -> bool:
            answer = queues.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
            messages.extend(json.loads(m["Body"]) for m in answer.get("Messages", []))
            return bool(messages) and "d" in _delivered(record_to)

        wait_until(described, timeout=60, interval=0.1)
    finally:
        status, err = server.stop()
    assert status == 0, err
    # [a b poison d] failed, so did [poison d] of its halves and [poison] of theirs, twice
    # (one retry), then it was given up; a, b and d ran once each, in order.
    assert _delivered(record_to) == ["a", "b", "d"]
    attempts = [line["items"] for line in _recorded(record_to) if line["failed"]]
    assert attempts == [["a", "b", "poison", "d"], ["poison", "d"], ["poison"], ["poison"]]
    assert len(messages) == 1
    info = messages[0]["KinesisBatchInfo"]
    assert info["batchSize"] == 1 and info["streamArn"] == stream
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == sequences["poison"]
    assert messages[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert "gave up 1 records of shard" in err


def test_a_partial_batch_response_retries_from_the_first_failure(tmp_path: Path,
                                                                moto_endpoint: str) -> None:
    record_to = tmp_path / "batches.jsonl"
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource(
        "Partial", "partial", "stream_batch.handler", properties=f"""\
      Environment:
        Variables:
          RECORD_TO: {record_to}
          REPORT_FAILURES: "1"
      Events:
        Changes:
          Type: Kinesis
          Properties:
            Stream: !GetAtt Events.Arn
            StartingPosition: TRIM_HORIZON
            BatchSize: 3
            MaximumRetryAttempts: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
""") + """\
  Events:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: partial-events
""")
    endpoint = moto_endpoint
    kinesis = client("kinesis", endpoint)
    kinesis.create_stream(StreamName="partial-events", ShardCount=1)
    for data in ("x", "poison-y", "z"):
        kinesis.put_record(StreamName="partial-events", Data=data.encode(),
                           PartitionKey="k")
    server = Server(tmp_path / "state", "--kinesis-endpoint", endpoint, template=template)
    try:
        wait_until(lambda: len(_recorded(record_to)) >= 2, timeout=30)
    finally:
        status, err = server.stop()
    assert status == 0, err
    # x was done; the batch was retried from poison-y once (its one retry), then given up.
    assert [line["items"] for line in _recorded(record_to)] == [
        ["x", "poison-y", "z"], ["poison-y", "z"]]
    assert "gave up 2 records" in err and "no on-failure destination" in err


def test_a_stream_mapping_needs_the_endpoint_that_serves_it(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource("Echo", "echo", "echo.handler"))
    server = Server(tmp_path / "state", template=template)
    try:
        with pytest.raises(ClientError, match="--dynamodb-endpoint URL") as refused:
            server.client().create_event_source_mapping(
                EventSourceArn=f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t/stream/2024",
                FunctionName="echo", StartingPosition="LATEST")
        assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    finally:
        status, err = server.stop()
    assert status == 0, err


def test_parallel_batches_keep_each_partition_keys_order(tmp_path: Path,
                                                         moto_endpoint: str) -> None:
    """ParallelizationFactor 2: a shard's batch runs as two at once, split by partition
    key, so that records of one key stay in order and never run alongside each other."""
    record_to = tmp_path / "batches.jsonl"
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource(
        "Fanout", "fanout", "stream_batch.handler", record_to=record_to))
    kinesis = client("kinesis", moto_endpoint)
    kinesis.create_stream(StreamName="fanout", ShardCount=1)
    stream = kinesis.describe_stream_summary(
        StreamName="fanout")["StreamDescriptionSummary"]["StreamARN"]
    keys = ["cats", "dogs"]  # their CRC-32s differ in parity: one lane each
    assert len({zlib.crc32(key.encode()) % 2 for key in keys}) == 2
    sent = [f"{keys[number % 2]}-{number}" for number in range(12)]
    for data in sent:
        kinesis.put_record(StreamName="fanout", Data=data.encode(),
                           PartitionKey=data.split("-")[0])
    server = Server(tmp_path / "state", "--kinesis-endpoint", moto_endpoint, template=template)
    try:
        server.client().create_event_source_mapping(
            EventSourceArn=stream, FunctionName="fanout", StartingPosition="TRIM_HORIZON",
            BatchSize=12, ParallelizationFactor=2)
        wait_until(lambda: len(_delivered(record_to)) >= 12, timeout=30)
    finally:
        status, err = server.stop()
    assert status == 0, err
    batches = [line["items"] for line in _recorded(record_to)]
    assert all(len({item.split("-")[0] for item in batch}) == 1 for batch in batches)
    for key in keys:
        assert [item for item in _delivered(record_to) if item.startswith(key)] == \
            [item for item in sent if item.startswith(key)]


def test_an_endpoint_that_is_down_is_reported_and_serving_goes_on(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource(
        "Echo", "echo", "echo.handler", properties="""\
      Events:
        Changes:
          Type: Kinesis
          Properties:
            Stream: arn:aws:kinesis:us-east-1:123456789012:stream/nowhere
            StartingPosition: LATEST
"""))
    down = f"http://127.0.0.1:{free_port()}"
    server = Server(tmp_path / "state", "--kinesis-endpoint", down, template=template)
    try:
        line = stderr_line_with(server.process, "stream mapping")
        assert "of echo: cannot list the shards of " \
            "arn:aws:kinesis:us-east-1:123456789012:stream/nowhere" in line
        assert line.rstrip().endswith("retrying")
        assert server.client().invoke(FunctionName="echo", Payload=b"{}")["StatusCode"] == 200
    finally:
        status, err = server.stop()
    assert status == 0, err


def test_a_killed_server_redelivers_at_most_the_batch_in_flight(tmp_path: Path,
                                                                 moto_endpoint: str) -> None:
    """At least once: a server killed (SIGKILL) mid-stream runs again, on restart, at most
    the batch whose checkpoint it had not written; nothing is lost or reordered."""
    record_to = tmp_path / "batches.jsonl"
    template = _table_template(tmp_path, "Killed", "killed", 10, record_to)
    dynamodb = _table(moto_endpoint, "killed")
    sent = [str(number) for number in range(200)]
    _put(dynamodb, "killed", *sent)
    state = tmp_path / "state"
    server = Server(state, "--dynamodb-endpoint", moto_endpoint, template=template)
    wait_until(lambda: len(_delivered(record_to)) >= 100, timeout=60, interval=0.001)
    server.kill()  # SIGKILL, its workers with it
    server = Server(state, "--dynamodb-endpoint", moto_endpoint, template=template)
    try:
        wait_until(lambda: set(_delivered(record_to)) >= set(sent), timeout=60)
    finally:
        status, err = server.stop()
    assert status == 0, err
    delivered = _delivered(record_to)
    assert len(delivered) - len(sent) <= 10  # the one batch in flight, if any
    first = list(dict.fromkeys(delivered))
    assert first == sent
