"""S3 events against a real S3-compatible server (moto's, started by the tests): objects
created and removed through boto3 reach the subscribed function as S3's records, by
polling the bucket (``serve --s3-endpoint``) and through the webhook (moto's S3 notifying
an SNS topic whose HTTP subscription posts to ``serve``, and MinIO's body posted over
HTTP); bodies that are not S3 records, a store that is down, a restart.  How a
template's S3 events are read is test_sam's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from helpers import function_resource, read_line, stderr_line_with, wait_until
from http_server import ROOT, Server
from sqs_server import client, free_port

from fastinvoke.sources.s3 import event_matches

PREFIX_AND_SUFFIX = ("            Filter: {S3Key: {Rules: [{Name: prefix, Value: in/}, "
                     "{Name: suffix, Value: .txt}]}}\n")
EVENT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


pytestmark = pytest.mark.usefixtures("moto_credentials")


@pytest.fixture
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


def new_bucket(endpoint: str) -> str:
    name = f"uploads-{uuid.uuid4().hex[:12]}"
    client("s3", endpoint).create_bucket(Bucket=name)
    return name


def s3_template(directory: Path, bucket: str, filter_: str = PREFIX_AND_SUFFIX) -> Path:
    """The worker (tests/functions/recorder.py) subscribed to ``bucket``'s creations
    and removals."""
    template = directory / "template.yaml"
    template.write_text(
        f"Resources:\n  Uploads:\n    Type: AWS::S3::Bucket\n"
        f"    Properties: {{BucketName: {bucket}}}\n"
        + function_resource(
            "Worker", "worker", "recorder.handler",
            "      Events:\n        Upload:\n          Type: S3\n          Properties:\n"
            "            Bucket: !Ref Uploads\n"
            "            Events: [s3:ObjectCreated:*, s3:ObjectRemoved:*]\n" + filter_,
            record_to=directory / "record.jsonl"))
    return template


def received(directory: Path) -> list[dict[str, Any]]:
    """The records the worker was invoked with, in the order it ran."""
    record = directory / "record.jsonl"
    if not record.exists():
        return []
    events = [json.loads(line)["event"] for line in record.read_text().splitlines()]
    assert all(len(event["Records"]) == 1 for event in events)  # one record per invocation
    return [event["Records"][0] for event in events]


def by_key(directory: Path) -> dict[tuple[str, str], int]:
    """How many times each (key, eventName) arrived."""
    return Counter((record["s3"]["object"]["key"], record["eventName"])
                   for record in received(directory))


def polling(directory: Path, template: Path, endpoint: str) -> Server:
    """``serve`` polling ``endpoint``, once its first listing (the baseline) is taken."""
    server = Server(directory / "state", "--s3-endpoint", endpoint, "--s3-poll-interval",
                    "0.2", template=template)
    line = read_line(server.process, timeout=30).decode()
    assert line == f"fastinvoke: S3 events (polling {endpoint})\n", line
    assert read_line(server.process, timeout=30).decode().startswith(
        "  Worker.Upload: bucket ")
    listings = directory / "state" / "s3-listings"
    wait_until(lambda: listings.exists() and any(listings.iterdir()), timeout=30)
    return server


def post(server: Server, body: bytes,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{server.url}/s3-events", data=body, method="POST",
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_objects_made_in_a_polled_bucket_invoke_the_function_with_s3_records(
        endpoint: str, tmp_path: Path) -> None:
    bucket = new_bucket(endpoint)
    s3 = client("s3", endpoint)
    s3.put_object(Bucket=bucket, Key="in/before.txt", Body=b"old")  # before: never sent
    server = polling(tmp_path, s3_template(tmp_path, bucket), endpoint)
    try:
        etag = s3.put_object(Bucket=bucket, Key="in/a b.txt", Body=b"hello")["ETag"]
        s3.put_object(Bucket=bucket, Key="in/skip.png", Body=b"x")  # not the suffix
        s3.put_object(Bucket=bucket, Key="out/skip.txt", Body=b"x")  # not the prefix
        s3.delete_object(Bucket=bucket, Key="in/before.txt")
        wait_until(lambda: len(received(tmp_path)) >= 2, timeout=30)
        s3.put_object(Bucket=bucket, Key="in/last.txt", Body=b"!")
        wait_until(lambda: ("in/last.txt", "ObjectCreated:Put") in by_key(tmp_path), timeout=30)
        # The store's changes stay the poller's: the webhook refuses them.
        status, answer = post(server, json.dumps({"Records": [
            received(tmp_path)[0]]}).encode())
        assert status == 409 and "polled at --s3-endpoint" in answer["message"]
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert by_key(tmp_path) == {("in/a+b.txt", "ObjectCreated:Put"): 1,
                                ("in/before.txt", "ObjectRemoved:Delete"): 1,
                                ("in/last.txt", "ObjectCreated:Put"): 1}
    created = next(r for r in received(tmp_path) if r["eventName"] == "ObjectCreated:Put")
    assert set(created) == {"eventVersion", "eventSource", "awsRegion", "eventTime",
                            "eventName", "userIdentity", "requestParameters",
                            "responseElements", "s3"}
    assert (created["eventVersion"], created["eventSource"], created["awsRegion"]) == (
        "2.1", "aws:s3", "us-east-1")
    assert EVENT_TIME.fullmatch(created["eventTime"])
    assert set(created["responseElements"]) == {"x-amz-request-id", "x-amz-id-2"}
    s3_part = created["s3"]
    assert s3_part["s3SchemaVersion"] == "1.0" and s3_part["configurationId"]
    assert s3_part["bucket"]["name"] == bucket
    assert s3_part["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    assert s3_part["object"]["key"] == "in/a+b.txt"
    assert (s3_part["object"]["size"], s3_part["object"]["eTag"]) == (5, etag.strip('"'))
    assert re.fullmatch(r"[0-9A-F]+", s3_part["object"]["sequencer"])
    removed = next(r for r in received(tmp_path) if r["eventName"] == "ObjectRemoved:Delete")
    assert set(removed["s3"]["object"]) == {"key", "sequencer"}  # no size, no eTag


def test_a_restart_sends_what_changed_while_stopped_and_nothing_twice(
        endpoint: str, tmp_path: Path) -> None:
    """The last listing is kept in the state directory: 20 objects, a restart, 20 more,
    each arrives once."""
    bucket = new_bucket(endpoint)
    template = s3_template(tmp_path, bucket, filter_="")
    s3 = client("s3", endpoint)
    server = polling(tmp_path, template, endpoint)
    try:
        for n in range(20):
            s3.put_object(Bucket=bucket, Key=f"first/{n}", Body=str(n).encode())
        wait_until(lambda: len(received(tmp_path)) >= 20, timeout=60)
    finally:
        code, err = server.stop()
    assert code == 0, err
    for n in range(20):  # while no server runs
        s3.put_object(Bucket=bucket, Key=f"while-stopped/{n}", Body=str(n).encode())
    s3.delete_object(Bucket=bucket, Key="first/0")
    server = polling(tmp_path, template, endpoint)
    try:
        wait_until(lambda: len(received(tmp_path)) >= 41, timeout=60)
        s3.put_object(Bucket=bucket, Key="last", Body=b"!")
        wait_until(lambda: ("last", "ObjectCreated:Put") in by_key(tmp_path), timeout=30)
    finally:
        code, err = server.stop()
    assert code == 0, err
    counts = by_key(tmp_path)
    assert counts == {**{(f"first/{n}", "ObjectCreated:Put"): 1 for n in range(20)},
                      **{(f"while-stopped/{n}", "ObjectCreated:Put"): 1 for n in range(20)},
                      ("first/0", "ObjectRemoved:Delete"): 1,
                      ("last", "ObjectCreated:Put"): 1}


def test_a_stores_webhook_invokes_the_function(endpoint: str, tmp_path: Path) -> None:
    """moto's S3 notifies an SNS topic, whose HTTP subscription posts to serve's webhook."""
    bucket = new_bucket(endpoint)
    server = Server(tmp_path / "state", template=s3_template(tmp_path, bucket))
    try:
        sns = client("sns", endpoint)
        topic = sns.create_topic(Name=bucket)["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=f"{server.url}/s3-events")
        s3 = client("s3", endpoint)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "TopicConfigurations": [{"TopicArn": topic, "Events": [
                "s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
        etags = {}
        for n in range(20):
            etags[f"in/{n}.txt"] = s3.put_object(Bucket=bucket, Key=f"in/{n}.txt",
                                                Body=b"x" * n)["ETag"].strip('"')
        s3.put_object(Bucket=bucket, Key="in/skip.png", Body=b"x")
        s3.delete_object(Bucket=bucket, Key="in/0.txt")
        s3.put_object(Bucket=bucket, Key="in/last.txt", Body=b"!")
        wait_until(lambda: ("in/last.txt", "ObjectCreated:Put") in by_key(tmp_path), timeout=30)
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert by_key(tmp_path) == {**{(key, "ObjectCreated:Put"): 1 for key in etags},
                                ("in/0.txt", "ObjectRemoved:Delete"): 1,
                                ("in/last.txt", "ObjectCreated:Put"): 1}
    records = {(r["s3"]["object"]["key"], r["eventName"]): r for r in received(tmp_path)}
    five = records["in/5.txt", "ObjectCreated:Put"]
    assert (five["s3"]["object"]["size"], five["s3"]["object"]["eTag"]) == (5, etags["in/5.txt"])
    assert five["eventSource"] == "aws:s3" and EVENT_TIME.fullmatch(five["eventTime"])
    assert five["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    # moto leaves out what S3 sends; the record has it all the same.
    assert {"userIdentity", "requestParameters", "responseElements"} <= set(five)
    assert "sequencer" in five["s3"]["object"]


def test_minio_webhook_bodies_and_bodies_that_are_no_s3_records(
        endpoint: str, tmp_path: Path) -> None:
    """MinIO's body (its eventName with ``s3:``, its key's ``/`` as %2F) becomes S3's
    record; a body that is not S3 records answers 400, naming why, and runs nothing."""
    bucket = new_bucket(endpoint)
    s3 = client("s3", endpoint)
    etag = s3.put_object(Bucket=bucket, Key="in/report 1.txt", Body=b"abc")["ETag"].strip('"')
    minio = {"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/in%2Freport+1.txt",
             "Records": [{
                 "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
                 "eventTime": "2026-12-06T10:00:00.123Z", "eventName": "s3:ObjectCreated:Put",
                 "userIdentity": {"principalId": "minioadmin"},
                 "requestParameters": {"principalId": "minioadmin", "region": "",
                                       "sourceIPAddress": "10.0.0.7"},
                 "responseElements": {"x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf3",
                                      "x-amz-request-id": "1870A1F2B6B2B6C1",
                                      "x-minio-deployment-id": "d1b0", "content-length": "3"},
                 "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
                        "bucket": {"name": bucket,
                                   "ownerIdentity": {"principalId": "minioadmin"},
                                   "arn": f"arn:aws:s3:::{bucket}"},
                        "object": {"key": "in%2Freport+1.txt", "size": 3, "eTag": etag,
                                   "contentType": "text/plain", "userMetadata": {},
                                   "sequencer": "1870A1F2B6C4D0E1"}},
                 "source": {"host": "10.0.0.7", "port": "", "userAgent": "MinIO"}}]}
    server = Server(tmp_path / "state", template=s3_template(tmp_path, bucket))
    try:
        for body, why in [
                (b"not json", "the body is not JSON"),
                (b'{"Records": []}', "Expected `array` of length >= 1 - at `$.Records`"),
                (b'{"Records": [{"eventName": "ObjectCreated:Put"}]}',
                 "missing required field `s3` - at `$.Records[0]`"),
                (json.dumps({"Records": [{**minio["Records"][0], "eventSource": "aws:sqs"}]})
                 .encode(), "eventSource 'aws:sqs' is not S3's"),
                (b'{"Type": "Notification", "Message": "{}"}', "missing required field "
                 "`Records`")]:
            status, answer = post(server, body)
            assert status == 400, (body, answer)
            assert why in answer["message"] and answer["message"].startswith(
                "not an S3 event notification: ")
        assert post(server, json.dumps(minio).encode()) == (200, {"records": 1,
                                                                  "invocations": 1})
        record = wait_until(lambda: received(tmp_path), timeout=30)[0]
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert len(received(tmp_path)) == 1  # the 400s ran nothing
    assert record["eventName"] == "ObjectCreated:Put" and record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == "us-east-1" and record["eventTime"] == \
        "2026-12-06T10:00:00.123Z"
    assert record["s3"]["object"] == {"key": "in/report+1.txt", "size": 3, "eTag": etag,
                                      "sequencer": "1870A1F2B6C4D0E1"}
    assert record["responseElements"] == {"x-amz-request-id": "1870A1F2B6B2B6C1",
                                          "x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf3"}
    assert record["userIdentity"] == {"principalId": "minioadmin"}
    assert record["requestParameters"] == {"sourceIPAddress": "10.0.0.7"}


def test_sns_confirmations_and_s3_test_events_run_nothing(tmp_path: Path) -> None:
    server = Server(tmp_path / "state", template=s3_template(tmp_path, "uploads-sns"))
    try:
        url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"
        assert post(server, json.dumps({"Type": "SubscriptionConfirmation",
                                        "SubscribeURL": url}).encode()) == (
            200, {"records": 0, "invocations": 0})
        test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "uploads-sns"}
        assert post(server, json.dumps({"Type": "Notification",
                                        "Message": json.dumps(test_event)}).encode()) == (
            200, {"records": 0, "invocations": 0})
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert f"an SNS topic subscribes /s3-events: confirm it by visiting {url}" in err
    assert received(tmp_path) == []


def test_with_auth_sigv4_the_webhook_takes_only_signed_requests(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"AKIDSTORE": "store-secret"}))
    server = Server(tmp_path / "state", "--auth", "sigv4", "--keys", str(keys),
                    template=s3_template(tmp_path, "uploads-signed"))
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "uploads-signed"}, "object": {"key": "in/a.txt", "size": 1}}}]})
    try:
        assert post(server, body.encode()) == (403, {"Type": "User",
                                                      "message": "Missing Authentication Token"})
        signed = AWSRequest("POST", f"{server.url}/s3-events", data=body)
        SigV4Auth(Credentials("AKIDSTORE", "store-secret"), "lambda", "us-east-1").add_auth(
            signed)
        assert post(server, body.encode(), dict(signed.headers.items())) == (
            200, {"records": 1, "invocations": 1})
        record = wait_until(lambda: received(tmp_path), timeout=30)[0]
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert record["s3"]["object"]["key"] == "in/a.txt"
    assert len(received(tmp_path)) == 1  # the unsigned one ran nothing


def test_a_store_that_is_down_is_reported_and_serving_goes_on(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    server = Server(tmp_path / "state", "--s3-endpoint", down,
                    template=s3_template(tmp_path, "uploads-down"))
    try:
        line = stderr_line_with(server.process, "S3 bucket")
        assert line.startswith(f"fastinvoke: S3 bucket uploads-down at {down}: cannot list it: ")
        assert line.rstrip().endswith("retrying")
        lambda_client = server.client()
        answer = lambda_client.invoke(FunctionName="worker", Payload=b'{"by": "hand"}')
        assert answer["StatusCode"] == 200 and "FunctionError" not in answer
        lambda_client.close()
    finally:
        code, err = server.stop()
    assert code == 0, err


def test_event_types_match_with_s3s_wildcard() -> None:
    assert event_matches("s3:ObjectCreated:*", "ObjectCreated:Put")
    assert event_matches("s3:ObjectCreated:*", "ObjectCreated:CompleteMultipartUpload")
    assert event_matches("s3:ObjectRemoved:Delete", "ObjectRemoved:Delete")
    assert not event_matches("s3:ObjectCreated:Put", "ObjectCreated:Copy")
    assert not event_matches("s3:ObjectRemoved:*", "ObjectCreated:Put")
    assert not event_matches("s3:ObjectCreated:*", "ObjectCreatedX:Put")


@pytest.mark.parametrize(("arguments", "said"), [
    (["--s3-endpoint", "localhost:9000"], "--s3-endpoint localhost:9000: give the store's URL"),
    (["--s3-poll-interval", "0"], "--s3-poll-interval 0.0: give a number of seconds above 0"),
])
def test_serve_refuses_an_s3_endpoint_that_is_no_url_or_a_poll_interval_of_0(
        arguments: list[str], said: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "serve", "--port", "0",
                           "--state-dir", str(tmp_path), *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and said in done.stderr
