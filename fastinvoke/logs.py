"""Lambda's platform log lines, and log group and stream names.

Every invocation leaves ``START``, the function's own output, ``END`` and ``REPORT`` in
Lambda's text format (``REPORT`` fields tab-separated, each followed by a tab); the log
store (``logstore.py``) keeps them, one event per line, as CloudWatch Logs does.
"""

from __future__ import annotations

import base64
import secrets
import time

import msgspec

TAIL_BYTES = 4096


class LogRecord(msgspec.Struct, frozen=True, gc=False):
    """One log message: a platform line or a chunk of the function's output."""

    timestamp_ms: int
    request_id: str
    message: str


def start_line(request_id: str, version: str = "$LATEST") -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report_line(
    request_id: str,
    duration_ns: int,
    billed_ms: int,
    memory_mb: int,
    max_used_mb: int,
    init_ns: int | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    """Lambda's REPORT line; ``init_ns`` only on a worker's first invocation."""
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ns / 1e6:.2f} ms\t"
        f"Billed Duration: {billed_ms} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_used_mb} MB\t"
    )
    if init_ns is not None:
        line += f"Init Duration: {init_ns / 1e6:.2f} ms\t"
    if status is not None:
        line += f"Status: {status}\t"
        if error_type is not None:
            line += f"Error Type: {error_type}\t"
    return line + "\n"


def split_lines(text: str) -> list[str]:
    """One message per line, each ending in a newline as CloudWatch stores them (a last line
    without one gets one).  Only "\n" separates lines, not all that ``str.splitlines`` does."""
    body = text[:-1] if text.endswith("\n") else text
    return [line + "\n" for line in body.split("\n")] if text else []


def timeout_line(request_id: str, timeout_s: int) -> str:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds\n"


def tail(text: str) -> str:
    """``X-Amz-Log-Result``: base64 of the last 4 KB of an invocation's log."""
    return base64.b64encode(text.encode()[-TAIL_BYTES:]).decode()


class InvocationLog(msgspec.Struct, gc=False):
    """What one invocation logged, kept compact; its text is built when someone reads it
    (formatting every REPORT line on the hot path would cost more than the call)."""

    timestamp_ms: int
    request_id: str
    output: bytes  # what the function printed
    duration_ns: int
    billed_ms: int
    memory_mb: int
    max_rss_kb: int
    init_ns: int | None = None
    status: str | None = None
    error_type: str | None = None
    version: str = "$LATEST"
    # The platform's lines: "text" (START, END, REPORT), "json" (platform.start and
    # platform.report records) or "" (none: a system log level of WARN).
    platform: str = "text"

    def lines(self) -> list[str]:
        """The log store's events: the platform's first lines, each line of the output (a
        last one without a newline gets one, rather than running into END), then its
        last ones."""
        before, after = self._platform()
        return [*before, *split_lines(self.output.decode("utf-8", "replace")), *after]

    def text(self) -> str:
        """The platform's lines and the function's output, as Lambda writes them."""
        before, after = self._platform()
        return "".join(before) + self.output.decode("utf-8", "replace") + "".join(after)

    def _platform(self) -> tuple[list[str], list[str]]:
        max_used_mb = -(-self.max_rss_kb // 1024)
        if self.platform == "json":
            started_ms = self.timestamp_ms - self.duration_ns // 1_000_000
            return [platform_start(started_ms, self.request_id, self.version)], [
                platform_report(self)]
        if not self.platform:
            return [], []
        return [start_line(self.request_id, self.version)], [
            end_line(self.request_id),
            report_line(self.request_id, self.duration_ns, self.billed_ms, self.memory_mb,
                        max_used_mb, self.init_ns, self.status, self.error_type)]


def platform_format(log_format: str, system_log_level: str | None) -> str:
    """``InvocationLog.platform`` for a function's LoggingConfig: its START and REPORT are
    INFO records, which a system log level of WARN leaves out."""
    if log_format != "JSON":
        return "text"
    return "" if system_log_level == "WARN" else "json"


def _json_time(epoch_ms: int) -> str:
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000))
            + f".{epoch_ms % 1000:03d}Z")


def platform_start(epoch_ms: int, request_id: str, version: str) -> str:
    """``START`` in the JSON log format: a ``platform.start`` record."""
    return msgspec.json.encode({"time": _json_time(epoch_ms), "type": "platform.start",
                                "record": {"requestId": request_id,
                                           "version": version}}).decode() + "\n"


def platform_report(log: InvocationLog) -> str:
    """``REPORT`` in the JSON log format: a ``platform.report`` record."""
    metrics: dict[str, float | int] = {
        "durationMs": round(log.duration_ns / 1e6, 3), "billedDurationMs": log.billed_ms,
        "memorySizeMB": log.memory_mb, "maxMemoryUsedMB": -(-log.max_rss_kb // 1024)}
    if log.init_ns is not None:
        metrics["initDurationMs"] = round(log.init_ns / 1e6, 3)
    record: dict[str, object] = {"requestId": log.request_id, "metrics": metrics,
                                 "status": log.status or "success"}
    if log.error_type is not None:
        record["errorType"] = log.error_type
    return msgspec.json.encode({"time": _json_time(log.timestamp_ms), "type": "platform.report",
                                "record": record}).decode() + "\n"


def log_group(function: str) -> str:
    return f"/aws/lambda/{function}"


def log_stream_name(version: str = "$LATEST") -> str:
    """``YYYY/MM/DD/[$LATEST]<32 hex>``: one stream per execution environment."""
    return f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{version}]{secrets.token_hex(16)}"

