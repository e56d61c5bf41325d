"""What an invocation answers, as Lambda's Invoke API does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from . import payloads
from .errors import FunctionError
from .logs import tail

if TYPE_CHECKING:
    from .pool.records import Invocation


class InvokeResult(msgspec.Struct, frozen=True):
    """What Lambda's Invoke answers (botocore's field names in snake case).

    ``payload`` holds the result bytes exactly as the function produced them, or the
    error document when ``function_error`` is set.
    """

    status_code: int
    payload: bytes = b""
    function_error: str | None = None
    log_result: str | None = None
    executed_version: str | None = None
    request_id: str = ""

    def value(self) -> Any:
        """The decoded result; a function error raises ``FunctionError``."""
        if self.function_error is not None:
            raise FunctionError(payloads.validate_json(self.payload), self.payload,
                                self.request_id)
        return payloads.validate_json(self.payload) if self.payload else None


def answer(invocation: Invocation, log_type: str | None, *,
           in_batch: bool = False) -> InvokeResult:
    """What Invoke answers for a finished synchronous invocation: its payload or error
    document, and with ``log_type="Tail"`` the last 4 KB of its log, base64-encoded.  The
    service error it ended with (its node was lost) is raised; in a batch it is that
    invocation's answer (its HTTP status and error body), so the others are not lost."""
    error = invocation.service_error
    if error is not None:
        if not in_batch:
            raise error
        return InvokeResult(error.status, msgspec.json.encode(error.to_body()),
                            request_id=invocation.request_id)
    return InvokeResult(
        200,
        invocation.payload,
        None if invocation.error_type is None else "Unhandled",
        tail(invocation.log_entry.text()) if log_type == "Tail" else None,
        invocation.pool.config.version,
        invocation.request_id,
    )
