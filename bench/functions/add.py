"""Adds two numbers from the event: the handler every latency/throughput figure runs."""

from typing import Any


def lambda_handler(event: dict[str, int], context: Any) -> int:
    return event["value1"] + event["value2"]
