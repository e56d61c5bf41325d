"""Ending the invocations that got no reply: a timeout, a crash, an Init failure, a pool
that cannot run them.  Each gets the error the platform reports (not the function's own),
its duration and what its worker printed, and is completed through the hop (lock held)."""

from __future__ import annotations

import msgspec

from .._core import monotonic_ns
from ..logs import timeout_line
from ..metering import CRASH, FUNCTION_ERROR, OUT_OF_MEMORY, TIMEOUT
from ..runtime.faults import error_log_line
from ..runtime.jsonlog import error_record
from .hop import Hop
from .output import take
from .records import FunctionPool, Invocation, WorkerRecord


def platform_error(invocation: Invocation, outcome: int, error_type: str, reason: str) -> None:
    """Fail ``invocation`` with Lambda's compact platform error document:
    ``{"errorType", "errorMessage": "RequestId: <id> Error: ..."}``."""
    invocation.outcome = outcome
    invocation.error_type = error_type
    invocation.payload = msgspec.json.encode({
        "errorType": error_type,
        "errorMessage": f"RequestId: {invocation.request_id} Error: {reason}",
    })


def finish_timed_out(hop: Hop, invocation: Invocation, record: WorkerRecord) -> None:
    timeout_s = invocation.pool.config.timeout_s
    platform_error(invocation, TIMEOUT, "Sandbox.Timedout",
                   f"Task timed out after {timeout_s:.2f} seconds")
    invocation.duration_ns = invocation.timeout_ns
    invocation.log = take(record) + timeout_line(
        invocation.request_id, timeout_s).encode()
    take_cold_start(record, invocation)
    hop.complete(invocation)


def finish_crashed(hop: Hop, invocation: Invocation, record: WorkerRecord, reason: str,
                   out_of_memory: bool = False) -> None:
    platform_error(invocation, OUT_OF_MEMORY if out_of_memory else CRASH,
                   "Runtime.ExitError", reason)
    if record.group is not None:
        invocation.max_rss_kb = record.group.memory_peak_bytes() >> 10
    invocation.duration_ns = monotonic_ns() - invocation.started_ns
    invocation.log = take(record) + (
        f"RequestId: {invocation.request_id} Error: {reason}\nRuntime.ExitError\n").encode()
    take_cold_start(record, invocation)
    hop.complete(invocation)


def finish_init_failed(hop: Hop, invocation: Invocation) -> None:
    """Answer ``invocation`` with its pool's Init error, as a cold start that never ran."""
    document = invocation.pool.init_error or {}
    invocation.outcome = FUNCTION_ERROR
    invocation.error_type = document.get("errorType")
    invocation.payload = msgspec.json.encode(document)
    as_json = invocation.pool.config.log_format == "JSON"
    invocation.log = (error_record(document) if as_json else error_log_line(document)).encode()
    invocation.cold = True
    invocation.init_ns = invocation.pool.init_ns
    hop.complete(invocation)


def fail_queue(hop: Hop, pool: FunctionPool, error_type: str, message: str) -> None:
    """Fail every invocation waiting for a worker of ``pool``."""
    while pool.queue:
        invocation = pool.queue.popleft()
        platform_error(invocation, CRASH, error_type, message)
        hop.complete(invocation)


def take_cold_start(record: WorkerRecord, invocation: Invocation) -> None:
    """``invocation`` ran on ``record``: it carries the worker's log stream, and its Init
    Duration if it was the worker's first."""
    invocation.log_stream = record.log_stream
    if record.provisioned:
        invocation.pool.meter.served_provisioned()
    if record.cold:
        record.cold = False
        invocation.cold = True
        invocation.init_ns = record.init_ns
