"""Reading a DynamoDB stream or a Kinesis stream shard by shard, with boto3 at the endpoint
``serve --dynamodb-endpoint`` / ``--kinesis-endpoint`` names, and each record in the shape
Lambda gives it to a function ("Using AWS Lambda with Amazon DynamoDB" and "... with
Amazon Kinesis" in the Lambda Developer Guide: the stream's record, with ``eventSourceARN``;
a Kinesis record's data base64-encoded).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .mappings import DYNAMODB, Mapping

LATEST_LABEL = "latest"  # a template's table stream: the one the table has now


@dataclass(frozen=True)
class StreamRecord:
    sequence: str  # its sequence number in its shard
    arrival: float  # epoch seconds
    key: str  # its partition key: records of one key keep their order
    record: dict[str, Any]  # as the function gets it


@dataclass(frozen=True)
class Shard:
    id: str
    parent: str | None  # read only once the parent shard is read to its end


class StreamSource(Protocol):
    arn: str

    def shards(self) -> list[Shard]: ...
    def iterator(self, shard: str, position: str, sequence: str | None = None,
                 timestamp: float | None = None) -> str: ...
    def records(self, shard: str, iterator: str,
                limit: int) -> tuple[list[StreamRecord], str | None]:
        """Records of ``shard`` from ``iterator``, and the next iterator (None: the shard
        is closed and read to its end)."""


def stream_source(mapping: Mapping, endpoint: str) -> StreamSource:
    return (DynamoDBStream if mapping.kind == DYNAMODB else KinesisStream)(
        mapping.source_arn, endpoint)


def _client(service: str, endpoint: str, region: str) -> Any:
    import boto3  # imported only where streams are read
    from botocore.config import Config

    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        config=Config(retries={"max_attempts": 2}, read_timeout=30))


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value or 0)


class DynamoDBStream:
    def __init__(self, arn: str, endpoint: str) -> None:
        self.arn = arn
        self.region = arn.split(":")[3]
        self._streams = _client("dynamodbstreams", endpoint, self.region)
        self._tables = _client("dynamodb", endpoint, self.region)
        self._stream_arn: str | None = None if arn.endswith("/" + LATEST_LABEL) else arn

    def _stream(self) -> str:
        """The stream's ARN; a template's ``latest`` label: the table's stream now."""
        if self._stream_arn is None:
            table = self.arn.split(":", 5)[5].split("/")[1]
            latest = self._tables.describe_table(TableName=table)["Table"].get(
                "LatestStreamArn")
            if latest is None:
                raise LookupError(f"table {table} has no stream: enable its StreamSpecification")
            self._stream_arn = latest
        return self._stream_arn

    def shards(self) -> list[Shard]:
        shards: list[Shard] = []
        start: dict[str, str] = {}
        while True:
            description = self._streams.describe_stream(StreamArn=self._stream(),
                                                        **start)["StreamDescription"]
            shards += [Shard(shard["ShardId"], shard.get("ParentShardId"))
                       for shard in description.get("Shards", [])]
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            start = {"ExclusiveStartShardId": last}

    def iterator(self, shard: str, position: str, sequence: str | None = None,
                 timestamp: float | None = None) -> str:
        extra = {"SequenceNumber": sequence} if sequence is not None else {}
        return self._streams.get_shard_iterator(
            StreamArn=self._stream(), ShardId=shard, ShardIteratorType=position,
            **extra)["ShardIterator"]

    def records(self, shard: str, iterator: str,
                limit: int) -> tuple[list[StreamRecord], str | None]:
        answer = self._streams.get_records(ShardIterator=iterator, Limit=min(limit, 1000))
        out = []
        for record in answer.get("Records", []):
            change = dict(record["dynamodb"])
            arrival = _epoch(change.get("ApproximateCreationDateTime"))
            change["ApproximateCreationDateTime"] = int(arrival)
            out.append(StreamRecord(
                change["SequenceNumber"], arrival,
                json.dumps(change.get("Keys"), sort_keys=True, default=_plain),
                {"eventID": record["eventID"], "eventName": record["eventName"],
                 "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                 "awsRegion": record.get("awsRegion", self.region), "dynamodb": change,
                 "eventSourceARN": self._stream()}))
        return out, answer.get("NextShardIterator")


class KinesisStream:
    def __init__(self, arn: str, endpoint: str) -> None:
        self.arn = arn
        self.region = arn.split(":")[3]
        self.name = arn.rsplit("/", 1)[1]
        self._client = _client("kinesis", endpoint, self.region)

    def shards(self) -> list[Shard]:
        shards: list[Shard] = []
        options: dict[str, Any] = {"StreamName": self.name}
        while True:
            answer = self._client.list_shards(**options)
            shards += [Shard(shard["ShardId"], shard.get("ParentShardId"))
                       for shard in answer.get("Shards", [])]
            if not answer.get("NextToken"):
                return shards
            options = {"NextToken": answer["NextToken"]}

    def iterator(self, shard: str, position: str, sequence: str | None = None,
                 timestamp: float | None = None) -> str:
        extra: dict[str, Any] = {}
        if sequence is not None:
            extra["StartingSequenceNumber"] = sequence
        if timestamp is not None:
            extra["Timestamp"] = datetime.fromtimestamp(timestamp)
        # By name: some Kinesis-compatible servers lose an iterator asked for by ARN.
        return self._client.get_shard_iterator(
            StreamName=self.name, ShardId=shard, ShardIteratorType=position,
            **extra)["ShardIterator"]

    def records(self, shard: str, iterator: str,
                limit: int) -> tuple[list[StreamRecord], str | None]:
        answer = self._client.get_records(ShardIterator=iterator, Limit=min(limit, 10_000))
        out = []
        for record in answer.get("Records", []):
            arrival = _epoch(record.get("ApproximateArrivalTimestamp"))
            sequence = record["SequenceNumber"]
            out.append(StreamRecord(sequence, arrival, record["PartitionKey"], {
                "kinesis": {"kinesisSchemaVersion": "1.0",
                            "partitionKey": record["PartitionKey"],
                            "sequenceNumber": sequence,
                            "data": base64.b64encode(record["Data"]).decode(),
                            "approximateArrivalTimestamp": arrival},
                "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": f"{shard}:{sequence}", "eventName": "aws:kinesis:record",
                "awsRegion": self.region, "eventSourceARN": self.arn}))
        return out, answer.get("NextShardIterator")


def _plain(value: Any) -> Any:
    """Binary key values (bytes from boto3), as JSON text."""
    return base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
