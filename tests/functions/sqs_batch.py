"""An SQS batch handler: appends {"bodies", "ids"} as one JSON line to $RECORD_TO, and
reports as failed (ReportBatchItemFailures) every record whose body contains "fail"."""

import json
import os


def handler(event, context):
    records = event["Records"]
    line = json.dumps({"bodies": [record["body"] for record in records],
                       "ids": [record["messageId"] for record in records],
                       "source": records[0]["eventSource"]}) + "\n"
    fd = os.open(os.environ["RECORD_TO"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}
                                  for record in records if "fail" in record["body"]]}
