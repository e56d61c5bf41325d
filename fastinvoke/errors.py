"""One exception hierarchy for fastinvoke, shaped after Lambda's errors.

Service errors (``ServiceError`` and subclasses) are what Lambda answers with an HTTP
4xx/5xx: each carries the exception name botocore matches on (``x-amzn-ErrorType``),
the HTTP status and the body key Lambda uses for its message.  A function error is
not a service error: ``invoke`` returns it inside ``InvokeResult``; only ``call``
raises it, as ``FunctionError``.

One class per error type Lambda names, even where two differ only in name and status:
botocore raises them by name, so callers catch them by name (a repeated shape, not
repeated logic; ``http/errors.py`` adds those only the HTTP front-end answers with).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FastInvokeError",
    "ServiceError",
    "ResourceNotFoundException",
    "InvalidRequestContentException",
    "RequestEntityTooLargeException",
    "ValidationException",
    "InvalidParameterValueException",
    "TooManyRequestsException",
    "ResourceConflictException",
    "PreconditionFailedException",
    "ServiceException",
    "FunctionError",
]


class FastInvokeError(Exception):
    """Base class of every error fastinvoke raises."""


class ServiceError(FastInvokeError):
    """An error Lambda reports as an HTTP error (never as a function error)."""

    status: int = 500
    error_type_field: str = "User"
    message_key: str = "message"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    @property
    def code(self) -> str:
        """The exception name botocore expects in ``x-amzn-ErrorType``."""
        return type(self).__name__

    def to_body(self) -> dict[str, Any]:
        """The JSON body Lambda sends with this error."""
        return {"Type": self.error_type_field, self.message_key: self.message, **self.fields}


class ResourceNotFoundException(ServiceError, LookupError):
    status = 404
    message_key = "Message"


class ProvisionedConcurrencyConfigNotFoundException(ServiceError, LookupError):
    status = 404


class InvalidRequestContentException(ServiceError, ValueError):
    status = 400


class RequestEntityTooLargeException(ServiceError, ValueError):
    status = 413


class ValidationException(ServiceError, ValueError):
    status = 400


class InvalidParameterValueException(ServiceError, ValueError):
    status = 400


class TooManyRequestsException(ServiceError):
    status = 429

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("Rate Exceeded." + (f" ({detail})" if detail else ""), Reason=reason)
        self.reason = reason


class ResourceConflictException(ServiceError):
    status = 409


class PreconditionFailedException(ServiceError):
    """A ``RevisionId`` that is not the function's latest."""

    status = 412


class ServiceException(ServiceError):
    status = 500
    error_type_field = "Service"
    message_key = "Message"


class FunctionError(FastInvokeError):
    """Raised by ``Invoker.call`` when the function failed.

    Carries Lambda's error document: ``error_type``, ``error_message``, ``stack_trace``
    and the raw ``payload`` bytes exactly as ``invoke`` would have returned them.
    """

    def __init__(self, document: dict[str, Any], payload: bytes, request_id: str) -> None:
        self.document = document
        self.payload = payload
        self.request_id = request_id
        self.error_type: str = str(document.get("errorType", ""))
        self.error_message: str = str(document.get("errorMessage", ""))
        trace = document.get("stackTrace") or document.get("trace") or []
        self.stack_trace: list[str] = list(trace)
        super().__init__(f"{self.error_type}: {self.error_message}")


def service_error(code: str, message: str, fields: dict[str, Any]) -> ServiceError:
    """The ``ServiceError`` a front-end answered with, rebuilt on the client's side from
    its name (``x-amzn-ErrorType``), message and extra fields (``Reason``...)."""
    kind = globals().get(code)
    if not (isinstance(kind, type) and issubclass(kind, ServiceError)):
        kind = ServiceException
    error = kind.__new__(kind)  # as the server raised it: its message and fields as sent
    ServiceError.__init__(error, message, **fields)
    if isinstance(error, TooManyRequestsException):
        error.reason = fields.get("Reason", "")
    return error
