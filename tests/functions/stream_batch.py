"""A stream batch handler: appends {"items", "sequences", "names", "failed"} as one JSON
line to $RECORD_TO for every attempt, then fails (raises) when a record's item or data
says "poison", or with $REPORT_FAILURES reports those records (ReportBatchItemFailures)."""

import base64
import json
import os


def _item(record):
    if "kinesis" in record:
        return base64.b64decode(record["kinesis"]["data"]).decode(), \
            record["kinesis"]["sequenceNumber"]
    change = record["dynamodb"]
    return change["Keys"]["id"]["S"], change["SequenceNumber"]


def handler(event, context):
    records = event["Records"]
    items = [_item(record) for record in records]
    poisoned = [sequence for item, sequence in items if "poison" in item]
    report = bool(os.environ.get("REPORT_FAILURES"))
    line = json.dumps({"items": [item for item, _ in items],
                       "sequences": [sequence for _, sequence in items],
                       "names": [record.get("eventName") for record in records],
                       "sources": sorted({record["eventSourceARN"] for record in records}),
                       "failed": bool(poisoned) and not report}) + "\n"
    fd = os.open(os.environ["RECORD_TO"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    if report:
        return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in poisoned]}
    if poisoned:
        raise RuntimeError(f"poisoned records: {poisoned}")
    return {}
