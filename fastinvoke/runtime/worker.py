"""A worker process: one warm execution environment running one invocation at a time.

It starts as a fork of its function's template (Init already done) holding its link to the
front-end (shared memory, made before the fork), says Hello, then loops: receive an Invoke
and the event bytes, call the handler, send a Reply with the result bytes and this
invocation's log output.  Module state survives between invocations, as in a warm Lambda
environment.

Output: fds 1 and 2 go to the worker's own log file (``O_APPEND``), so everything the
function prints — ``print``, ``logging``, C extensions, child processes — is kept, and
whatever a crashed worker printed can still be read by the front-end.  After each
invocation the worker reads its file from where it stopped and sends those bytes along.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from .. import wire
from .._core import (
    STDLIB,
    Link,
    check_result,
    lambda_layout,
    max_rss_kb,
    monotonic_ns,
)
from ..limits import RESPONSE_PAYLOAD_LIMIT
from . import freeze, jsonlog
from .context import LambdaContext
from .faults import Fault, error_document, error_log_line
from .tracing import trace_id

_request_id = ""


def _marshal_hook(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encode_result = msgspec.json.Encoder(enc_hook=_marshal_hook, decimal_format="number").encode
_decode_event = msgspec.json.decode
_encode_json = msgspec.json.encode
# Lambda's Python runtimes before 3.12 escape every non-ASCII character (ensure_ascii).
_ascii = sys.version_info < (3, 12)


def marshal(value: Any) -> bytes:
    """``value`` as the bytes Lambda's Python runtime would send (simplejson's layout)."""
    found = check_result(value)
    if found is None:
        return lambda_layout(_encode_result(value), _ascii)
    if found is STDLIB:  # NaN, exponent-form floats, None/bool keys: exact via json
        return json.dumps(value, ensure_ascii=_ascii, default=float).encode()
    raise Fault("Runtime.MarshalError", "Unable to marshal response: Object of type "
                f"{type(found).__name__} is not JSON serializable")


# How an unhandled error is logged: text, or a JSON record (``install_logging``).
_log_error: Callable[[dict[str, Any]], str] = error_log_line


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _request_id
        return True


def install_logging() -> None:
    """Format the root logger as Lambda's Python runtime does (UTC times, request id), in
    the function's log format: text, or JSON records from its application log level up."""
    global _log_error
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stdout)
    handler.terminator = ""
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    if os.environ.get("AWS_LAMBDA_LOG_FORMAT") == "JSON":
        formatter = jsonlog.JsonFormatter()
        level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO")
        root.setLevel("DEBUG" if level == "TRACE" else level)  # WARN, FATAL: logging's too
        _log_error = jsonlog.error_record
    handler.setFormatter(formatter)
    root.handlers[:] = [handler]


def prepare() -> None:
    """Set up what every worker shares, once, in the template before Init (so Init's own
    output and logging already look as on Lambda, and a fork inherits it all ready):
    unbuffered sys.stdout/stderr over fds 1 and 2, Lambda's logging format, the
    function's context fields, the result encoding of this runtime."""
    global _ascii
    for name, number in (("stdout", 1), ("stderr", 2)):
        raw = io.FileIO(number, "w", closefd=False)
        setattr(sys, name, io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace",
                                            write_through=True))
    install_logging()
    LambdaContext.configure()
    runtime = os.environ.get("AWS_EXECUTION_ENV", "").removeprefix("AWS_Lambda_python3.")
    if runtime.isdigit():
        _ascii = int(runtime) < 12


def redirect_output(output: int) -> None:
    """Point fds 1 and 2 at the worker's output pipe (the front-end reads it)."""
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)


def run(
    link: Link,
    output: int,
    handler: Callable[[Any, Any], Any] | Exception,
    init_ns: int,
    peak: int = -1,
    log_stream: str = "",
) -> None:
    """Serve invocations until told to stop (``prepare`` ran in the template).
    ``handler`` is the Init's outcome: the resolved function, or the exception Init
    raised (reported on every invocation).  ``output`` is the write end of the output
    pipe; ``peak`` an open file of the cgroup's peak memory, or -1."""
    os.environ["AWS_LAMBDA_LOG_STREAM_NAME"] = LambdaContext.log_stream_name = log_stream
    redirect_output(output)
    link.send(wire.encode_header(wire.Hello(wire.PROTOCOL, os.getpid(), init_ns, True)))
    try:
        _serve(link, handler, peak)
    finally:
        link.close()


def _serve(link: Link, handler: Any, peak: int) -> None:
    """The invoke loop.  ``peak``: an fd of the cgroup's peak-memory file, or -1 (then
    Max Memory Used is the process's own peak RSS)."""
    send, recv = link.send, link.recv
    decode, encode = wire.decode_to_worker, wire.encode_header
    trace = _TraceId()
    os.environ._data[_TRACE_KEY] = trace  # type: ignore[attr-defined]
    spin = wire.SPIN_ADAPTIVE  # how the last request said to wait for the next one
    hold_gil = False  # threads the function left stay frozen while we wait
    stopped: list[int] = []  # processes it left, stopped until the next request
    while True:
        message = decode(recv(spin, hold_gil))
        if stopped:
            freeze.resume(stopped)
        kind = type(message)
        if kind is wire.Stop:
            return
        if kind is wire.Batch:
            for item in message.items:  # each answered as it ends (replies are a ring)
                reply = _run_one(handler, item, trace, peak)
                send(encode(reply))
                if reply.retire:
                    break  # the rest never ran: the front-end sends them to another worker
            spin = item.spin
        else:
            send(encode(_run_one(handler, message, trace, peak)))
            spin = message.spin
        hold_gil = freeze.threads_left()
        stopped = freeze.stop_children()


def _run_one(handler: Any, message: wire.Invoke, trace: _TraceId, peak: int) -> wire.Reply:
    """Run one invocation; its Reply."""
    global _request_id
    if message.marked:
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, wire.OUTPUT_MARK)
    _request_id = request_id = message.request_id
    trace.caller, trace.text = message.trace_id, None  # a new one per invocation
    started = monotonic_ns()
    payload, error_type = _invoke(handler, message)
    duration = monotonic_ns() - started
    if error_type is None and len(payload) > RESPONSE_PAYLOAD_LIMIT:
        payload, error_type = response_too_large()
    _request_id = ""
    # A worker whose Init failed asks to be retired: the next invocation gets a fresh
    # worker that retries Init, as Lambda re-initialises.  (Exiting here instead would
    # race the reply against the template's exit report.)
    return wire.Reply(request_id, duration, error_type, memory_used_kb(peak, max_rss_kb()),
                      payload, isinstance(handler, Exception))


_TRACE_KEY = b"_X_AMZN_TRACE_ID"


class _TraceId:
    """The value of ``_X_AMZN_TRACE_ID`` in ``os.environ``: made when first read in an
    invocation.  ``os.environ`` decodes its values on every read, so this stands where
    the bytes would.  Not set with ``putenv``: a new value every invocation would cost
    microseconds each, and glibc's setenv keeps every distinct value it is given."""

    __slots__ = ("caller", "text")

    def __init__(self) -> None:
        self.caller: str | None = None  # the caller's trace header
        self.text: str | None = None

    def decode(self, *_: str) -> str:
        if self.text is None:
            self.text = trace_id(self.caller)
        return self.text


def _invoke(handler: Any, message: wire.Invoke) -> tuple[bytes, str | None]:
    """Run the handler once; return (result or error document bytes, errorType or None)."""
    if isinstance(handler, Exception):  # Init failed in this worker (prefork=False)
        document = error_document(handler, "")
        sys.stdout.write(_log_error(document))
        return marshal(document), document["errorType"]
    try:
        try:
            event = _decode_event(message.event)
        except msgspec.DecodeError as exc:
            raise Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}") from None
        context = LambdaContext(message.request_id, message.deadline_ms, message.invoked_arn,
                                message.client_context, message.identity)
        result = handler(event, context)
        if type(result) is bytes:
            return result, None
        try:
            return marshal(result), None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None
    except Exception as exc:
        document = error_document(exc, message.request_id)
        sys.stdout.write(_log_error(document))
        return marshal(document), document["errorType"]


def memory_used_kb(peak: int, rss_kb: int) -> int:
    """Max Memory Used: the cgroup's peak (``peak`` is an fd of its file, or -1) or the
    processes' peak RSS, whichever is larger.  The group is charged only for pages the
    worker itself touched first; its RSS also counts what it shares with the template."""
    return max(rss_kb, int(os.pread(peak, 32, 0)) >> 10) if peak >= 0 else rss_kb


def response_too_large() -> tuple[bytes, str]:
    document = {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
        f"({RESPONSE_PAYLOAD_LIMIT} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    return _encode_json(document), document["errorType"]
