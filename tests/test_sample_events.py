"""``fastinvoke event TYPE``: sample events, as ``sam local generate-event`` prints
them, piped into ``fastinvoke invoke`` as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "template.yaml"


def event(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "event", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_api_gateway_events() -> None:
    rest = event("apigateway", "--method", "post", "--path", "/pets/7?q=a", "--body", "{}")
    assert (rest["httpMethod"], rest["path"], rest["body"]) == ("POST", "/pets/7", "{}")
    assert rest["queryStringParameters"] == {"q": "a"}
    assert rest["requestContext"]["stage"] == "Prod"
    http = event("http-api", "--path", "/pets/7")
    assert (http["version"], http["routeKey"], http["rawPath"]) == ("2.0", "$default", "/pets/7")
    url = event("function-url")
    assert url["requestContext"]["domainName"].endswith(".lambda-url.us-east-1.on.aws")


def test_sqs_s3_and_schedule_events() -> None:
    sqs = event("sqs", "--count", "3", "--body", "hi", "--queue", "jobs")
    assert [record["body"] for record in sqs["Records"]] == ["hi"] * 3
    record = sqs["Records"][0]
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:jobs"
    assert record["eventSource"] == "aws:sqs" and record["md5OfBody"] == \
        "49f68a5c8493ec2c0bf489821c21fc3b"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    s3 = event("s3-put", "--bucket", "b", "--key", "k.txt")["Records"][0]
    assert (s3["eventName"], s3["s3"]["bucket"]["name"], s3["s3"]["object"]["key"]) == (
        "ObjectCreated:Put", "b", "k.txt")
    schedule = event("schedule", "--rule", "nightly")
    assert schedule["detail-type"] == "Scheduled Event"
    assert schedule["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/nightly"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_sample_event_pipes_into_invoke() -> None:
    sample = subprocess.run([sys.executable, "-m", "fastinvoke", "event", "http-api"],
                            cwd=ROOT, capture_output=True, timeout=60, check=True).stdout
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "invoke", "hello", "--template",
                           str(EXAMPLES), "--payload", "@-"], cwd=ROOT, input=sample,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"message": "hello world", "route": "$default"}
