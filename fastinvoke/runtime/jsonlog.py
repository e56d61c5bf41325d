"""Lambda's JSON log format for Python (the function's LoggingConfig.LogFormat JSON): what
its runtime writes for a ``logging`` record and for an unhandled error, one JSON object a
line (AWS Lambda Developer Guide, "Log and monitor Python Lambda functions": JSON format)."""

from __future__ import annotations

import json
import logging
import time
import traceback
from datetime import UTC, datetime
from typing import Any

# A record's attributes that are logging's own, not fields the caller added (extra=...).
_OWN = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "aws_request_id"}
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "message", "logger", "requestId"}``, with ``errorType``,
    ``errorMessage``, ``stackTrace`` and ``location`` for an exception, and the record's
    extra fields; fields without a value are left out."""

    def format(self, record: logging.LogRecord) -> str:
        level = min(50, max(0, record.levelno)) // 10 * 10
        stamp = datetime.fromtimestamp(record.created, tz=UTC)
        document: dict[str, Any] = {
            "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": logging.getLevelName(level),
            "message": record.getMessage(),
            "logger": record.name,
        }
        if record.exc_info and record.exc_info[0] is not None:
            kind, error, trace = record.exc_info
            document.update(stackTrace=traceback.format_tb(trace), errorType=kind.__name__,
                            errorMessage=str(error),
                            location=f"{record.pathname}:{record.funcName}:{record.lineno}")
        document["requestId"] = getattr(record, "aws_request_id", None)
        document.update((key, value) for key, value in vars(record).items()
                        if key not in _OWN and key not in document)
        return _encode({key: value for key, value in document.items()
                        if value is not None}) + "\n"


def error_record(document: dict[str, Any]) -> str:
    """The line an unhandled error is logged as: the error document with its time and
    ``log_level``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    return _encode({"timestamp": stamp, "log_level": "ERROR", **document}) + "\n"
