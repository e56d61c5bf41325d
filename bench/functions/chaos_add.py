"""Chaos soak: adds two numbers; never fails on its own."""

from typing import Any

from chaos_record import record


def lambda_handler(event: dict[str, Any], context: Any) -> int:
    record(event, context)
    return event["value1"] + event["value2"]
