"""The errors CloudWatch Logs answers with (Amazon CloudWatch Logs API Reference, "Common
Errors" and each operation's "Errors"), in its JSON protocol: HTTP 400 and
``{"__type": NAME, "message": TEXT}``, which botocore raises by name."""

from __future__ import annotations

from typing import Any

from .errors import ServiceError, service_error


class CloudWatchLogsError(ServiceError):
    status = 400

    def to_body(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message}


class InvalidParameterException(CloudWatchLogsError, ValueError):
    """A parameter of the request is wrong."""


class ResourceNotFoundException(CloudWatchLogsError, LookupError):
    """CloudWatch Logs' own (a log group or a metric filter), not Lambda's."""


class LimitExceededException(CloudWatchLogsError):
    """A quota is reached (100 metric filters a log group)."""


def logs_error(code: str, message: str) -> ServiceError:
    """The error a server answered with, rebuilt on the client's side by its name."""
    kind = {cls.__name__: cls for cls in (InvalidParameterException, ResourceNotFoundException,
                                          LimitExceededException)}.get(code)
    return kind(message) if kind is not None else service_error(code, message, {})
