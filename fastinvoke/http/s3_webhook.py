"""``POST /s3-events`` on the Lambda API's port: an S3-compatible store's event
notifications (MinIO's webhook target, or an SNS topic's HTTP subscription), each record
an Event invocation of the functions subscribed to it (``sources.s3``).  It is guarded as
the Lambda operations are (SigV4 with ``--auth sigv4``), so it is never open beyond
loopback.

Answers: 200 ``{"records": N, "invocations": M}`` once the invocations are queued
(durably, in a state directory's Event queue), so a store that retries on failure
redelivers only what was not taken; 400 naming what is wrong with a body that is not S3
event records, having run nothing; 409 for a bucket this server also polls
(``--s3-endpoint``), whose changes would otherwise arrive twice.
"""

from __future__ import annotations

import asyncio
import sys

from ..sources.s3 import Notifier
from ..sources.s3webhook import NotS3Event, read_body
from .messages import Request, Response, json_response

PATH = "/s3-events"


async def receive(notifier: Notifier, request: Request, region: str) -> Response:
    if request.method != "POST":
        return json_response({"message": f"{PATH} takes POST: S3 event notifications"}, 405)
    try:
        delivery = read_body(request.body, region)
    except NotS3Event as error:
        return json_response({"message": f"not an S3 event notification: {error}"}, 400)
    if delivery.subscribe_url is not None:  # an SNS topic's HTTP subscription, to confirm
        print(f"fastinvoke: an SNS topic subscribes {PATH}: confirm it by visiting "
              f"{delivery.subscribe_url}", file=sys.stderr, flush=True)
        return json_response({"records": 0, "invocations": 0})
    polled = sorted({change.bucket for change in delivery.changes} & notifier.polled)
    if polled:
        return json_response({"message": f"bucket {', '.join(polled)} is polled at "
                              "--s3-endpoint: its changes arrive from there already"}, 409)
    queued = await asyncio.to_thread(notifier.deliver, delivery.changes)
    return json_response({"records": len(delivery.changes), "invocations": queued})
