"""Prints exactly one line per invocation: the cost of capturing a function's output."""

from typing import Any


def lambda_handler(event: dict[str, int], context: Any) -> None:
    print(f"line {event['n']}")
