"""Chaos soak: sleeps ``sleep_s`` seconds (past the function's timeout when the soak asks
for a timeout), then answers ``"slept"``."""

import time
from typing import Any

from chaos_record import record


def lambda_handler(event: dict[str, Any], context: Any) -> str:
    record(event, context)
    time.sleep(event["sleep_s"])
    return "slept"
