"""Chaos soak: always raises ``ChaosError`` (an unhandled function error)."""

from typing import Any

from chaos_record import record


class ChaosError(Exception):
    pass


def lambda_handler(event: dict[str, Any], context: Any) -> None:
    record(event, context)
    raise ChaosError(f"asked to fail: {event.get('id', 'sync')}")
