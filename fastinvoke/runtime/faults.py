"""Lambda's error document for a failed Init or invocation, runtime frames trimmed.

The shape copies awslambdaric: ``errorMessage``, ``errorType``, ``requestId`` (empty
during Init) and ``stackTrace`` as ``traceback.format_list`` strings, without the
frames of fastinvoke's own runtime, which the user did not write.  ``exit_reason``
words a runtime process's end as Lambda does, for the supervisor and the bridge alike.
"""

from __future__ import annotations

import os
import signal
import traceback
from types import TracebackType

_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NBSP = "\u00a0"
_SIGNAL_TEXT = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGILL: "illegal instruction",
    signal.SIGINT: "interrupt",
    signal.SIGHUP: "hangup",
    signal.SIGPIPE: "broken pipe",
    signal.SIGQUIT: "quit",
    signal.SIGXCPU: "CPU time limit exceeded",
}


class Fault(Exception):
    """A failure the runtime itself detects, with one of Lambda's ``Runtime.*`` types."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace if trace is not None else []


def user_frames(tb: TracebackType | None) -> list[str]:
    """The traceback as ``format_list`` strings, fastinvoke's runtime frames removed."""
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(_RUNTIME_DIR)]
    return traceback.format_list(frames)


def error_document(exc: BaseException, request_id: str) -> dict:
    """Lambda's error document for ``exc`` raised by user code (or a ``Fault``)."""
    if isinstance(exc, Fault):
        return {
            "errorMessage": exc.message,
            "errorType": exc.error_type,
            "requestId": request_id,
            "stackTrace": exc.trace,
        }
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": user_frames(exc.__traceback__),
    }


def error_log_line(document: dict) -> str:
    """The line the Python runtime logs for an unhandled error.

    ``[ERROR] Type: message`` and the traceback, joined with ``\\r`` so the record stays
    one line, leading spaces turned into no-break spaces, as awslambdaric writes it.
    """
    lines = [f"[ERROR] {document['errorType']}: {document['errorMessage']}"]
    trace = document.get("stackTrace") or []
    if trace:
        lines.append("Traceback (most recent call last):")
        for frame in trace:
            for line in frame.rstrip("\n").split("\n"):
                stripped = line.lstrip(" ")
                lines.append(_NBSP * (len(line) - len(stripped)) + stripped)
    return "\r".join(lines) + "\n"


def exit_reason(exit_status: int, signum: int) -> str:
    """How Lambda words a runtime's end: ``signal: killed``, ``exit status 1``..."""
    if signum:
        return "Runtime exited with error: signal: " + _SIGNAL_TEXT.get(signum, f"signal {signum}")
    if exit_status == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: exit status {exit_status}"
