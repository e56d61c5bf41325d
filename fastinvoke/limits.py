"""Lambda's numeric limits (AWS Lambda Developer Guide, "Lambda quotas"), and the check
that refuses a value out of range with the error Lambda gives (never clamped)."""

from __future__ import annotations

from .errors import ValidationException

MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10_240
MIN_TIMEOUT_S = 1
MAX_TIMEOUT_S = 900
MAX_ENV_BYTES = 4 * 1024
MIN_EPHEMERAL_MB = 512  # /tmp: EphemeralStorage.Size, also its default
MAX_EPHEMERAL_MB = 10_240
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 1024 * 1024
# A response is refused only past 6 MB plus a little: the Runtime API's own allowance.
RESPONSE_PAYLOAD_LIMIT = 6 * 1024 * 1024 + 100
STREAMED_RESPONSE_LIMIT = 20 * 1024 * 1024  # a streamed response's (Lambda's soft limit)


def check_range(value: int, field: str, low: int, high: int) -> None:
    """Refuse ``value`` of the API field ``field`` unless it is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
            "constraint: Member must be an integer"
        )
    if value < low:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
            f"constraint: Member must have value greater than or equal to {low}"
        )
    if value > high:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
            f"constraint: Member must have value less than or equal to {high}"
        )
