"""Runs for event["ms"] milliseconds of wall time (a known duration to bill)."""

import time


def handler(event, context):
    end = time.monotonic() + event["ms"] / 1000
    while time.monotonic() < end:
        pass
    return event["ms"]
