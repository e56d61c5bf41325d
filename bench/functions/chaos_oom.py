"""Chaos soak: touches ``mb`` MiB (past the function's memory size when the soak asks for
an out-of-memory kill), then answers their count."""

from typing import Any

from chaos_record import record


def lambda_handler(event: dict[str, Any], context: Any) -> int:
    record(event, context)
    block = b"\x01" * (event["mb"] << 20)  # bytes(n) would be calloc'd: untouched pages
    return len(block) >> 20
