"""Does nothing: isolates the invocation path from any handler work."""

from typing import Any


def lambda_handler(event: Any, context: Any) -> None:
    return None
