"""A worker for a runtime other than Python: the bridge between the dispatcher and a runtime
process that speaks Lambda's Runtime API.

Forked from its function's template like every worker (so already in the worker's cgroups,
fds 1 and 2 on its log file), it serves the Runtime API on 127.0.0.1 (``runtime_api``) and
starts the runtime as its child (``launch``) with ``AWS_LAMBDA_RUNTIME_API`` pointing at it.

* **Init** runs from the runtime's start to its first ``GET /next`` (its Init Duration),
  within Lambda's 10 s; then the worker says Hello.  An Init that fails (``/init/error``,
  the runtime exits, or 10 s pass) answers the first invocation, and the worker retires, as
  a Python worker whose Init failed does.
* **Invoke**: the Invoke answers the runtime's waiting ``/next``; its ``/response`` or
  ``/error`` becomes the Reply.  Duration runs from the one to the other.
* **Frozen between invocations**: once the runtime asks for its next event and none is
  waiting, it is stopped (SIGSTOP) until one comes (SIGCONT), as Lambda freezes an idle
  execution environment: work a handler left pending resumes in the next invocation, and an
  idle runtime uses no CPU.
* **The runtime's end**: during an invocation the worker ends the same way (exit status or
  signal), so the supervisor reports ``Runtime.ExitError`` (or an out-of-memory kill) as
  for a Python worker.  Between invocations (a bootstrap that handles one event and exits,
  or a runtime that exits after reporting an uncaught exception) the next invocation starts
  it again, and its REPORT shows that Init Duration.
* The runtime dies with the worker (parent-death signal), so a timeout's SIGKILL of the
  worker ends both.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
from typing import NamedTuple

import msgspec

from .. import wire
from .._core import Link, max_rss_kb, monotonic_ns, set_parent_death_signal
from .faults import exit_reason
from .launch import runtime_environment
from .runtime_api import RuntimeApi
from .worker import memory_used_kb, redirect_output

INIT_TIMEOUT_NS = 10_000_000_000  # Lambda's limit on an on-demand function's Init phase
_TAKEN_POLL_S = 0.0001  # while the front-end has not taken the last part yet
_encode_json = msgspec.json.encode


class InitFailure(NamedTuple):
    """Why the runtime's Init failed: its own error document (``/init/error``, relayed as
    is), or the platform's reason (``RequestId: <id> Error: <reason>``)."""

    error_type: str
    reason: str = ""
    document: bytes = b""

    def payload(self, request_id: str) -> bytes:
        if self.document:
            return self.document
        return _encode_json({"errorType": self.error_type,
                             "errorMessage": f"RequestId: {request_id} Error: {self.reason}"})

    def log_lines(self, request_id: str) -> bytes:
        """What the platform logs for it (the runtime logged its own error itself)."""
        if self.document:
            return b""
        return f"RequestId: {request_id} Error: {self.reason}\n{self.error_type}\n".encode()


class RuntimeProcess:
    """The runtime process of one worker and the Runtime API it talks to.

    ``process`` is None while no runtime runs (not started yet, or ended between
    invocations); ``failure`` is set when its last Init failed.
    """

    def __init__(self, command: list[str], api: RuntimeApi, cwd: str) -> None:
        self.command = command
        self.api = api
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.pidfd = -1
        self.frozen = False
        self.failure: InitFailure | None = None
        self.init_ns = 0

    def start(self, deadline_ns: int) -> None:
        """Start the runtime and wait for the end of its Init (see the module docstring);
        sets ``init_ns`` and, if it failed, ``failure``."""
        api = self.api
        api.reset()
        self.failure = None
        started = monotonic_ns()
        try:
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env=runtime_environment(api.address),
                stdin=subprocess.DEVNULL, preexec_fn=functools.partial(_die_with, os.getpid()))
        except OSError as exc:
            self.init_ns = monotonic_ns() - started
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            self.failure = InitFailure(
                "Runtime.InvalidEntrypoint", f"fork/exec {self.command[0]}: {reason} (a "
                "bootstrap must be an executable program, or a script starting with #!)")
            return
        self.pidfd = os.pidfd_open(self.process.pid)
        api.watch(self.pidfd)
        while api.ready_ns == 0 and api.init_error is None:
            remaining_ms = -(-(deadline_ns - monotonic_ns()) // 1_000_000)
            if remaining_ms <= 0:
                self.stop()
                self.failure = InitFailure("Sandbox.Timedout", "Init timed out after "
                                           f"{INIT_TIMEOUT_NS / 1e9:.2f} seconds")
                break
            if api.step(remaining_ms) and api.ready_ns == 0 and api.init_error is None:
                returncode = self._reap()
                self.failure = InitFailure("Runtime.ExitError", _reason(returncode))
                break
        self.init_ns = (api.ready_ns or monotonic_ns()) - started
        if api.init_error is not None:
            self.stop()  # Lambda resets an environment whose Init failed
            document, error_type = api.init_error
            self.failure = InitFailure(error_type, document=document or b"null")

    def invoke(self, message: wire.Invoke) -> tuple[bytes, str | None]:
        """Hand ``message`` to the runtime; its result or error document and errorType.
        If the runtime ends first, this worker ends the same way (never returns)."""
        api = self.api
        if self.frozen:
            os.kill(self.process.pid, signal.SIGCONT)
            self.frozen = False
        delivered = False
        while True:
            if not delivered and api.waiting is not None:
                delivered = api.begin(message)
            if delivered and api.result is not None:
                return api.result
            if api.step(None):
                if delivered and api.result is not None:
                    return api.result  # it answered, then ended: the next call starts it again
                _end_like(self._reap())

    def await_next(self, event_waiting: bool) -> None:
        """After a reply: wait until the runtime asks for its next event, then freeze it
        unless ``event_waiting``; or note that it ended (started again on the next one)."""
        api = self.api
        while api.waiting is None:
            if api.step(None):
                self._reap()
                return
        if not event_waiting:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.frozen = True

    def peak_rss_kb(self) -> int:
        """The runtime process's peak resident memory (VmHWM), 0 if unknown."""
        if self.process is not None:
            try:
                with open(f"/proc/{self.process.pid}/status", "rb") as status:
                    for line in status:
                        if line.startswith(b"VmHWM:"):
                            return int(line.split()[1])
            except OSError:
                pass
        return 0

    def stop(self) -> None:
        """Kill the runtime (a frozen one too) and wait for it."""
        if self.process is not None:
            self.process.kill()
            self._reap()

    def _reap(self) -> int:
        returncode = self.process.wait()
        self.api.unwatch(self.pidfd)
        os.close(self.pidfd)
        self.process = None
        self.pidfd = -1
        self.frozen = False
        return returncode


def run(link: Link, output: int, command: list[str], peak: int, log_stream: str,
        code_dir: str) -> None:
    """Run the runtime's Init, say Hello, serve invocations until told to stop.  The
    runtime's output goes where the worker's does: ``output``, the pipe."""
    os.environ["AWS_LAMBDA_LOG_STREAM_NAME"] = log_stream
    redirect_output(output)
    api = RuntimeApi()
    api.on_part = functools.partial(_send_part, link, api)
    runtime = RuntimeProcess(command, api, code_dir)
    runtime.start(monotonic_ns() + INIT_TIMEOUT_NS)
    try:
        link.send(wire.encode_header(wire.Hello(wire.PROTOCOL, os.getpid(), runtime.init_ns)))
        _serve(link, runtime, peak)
    finally:
        runtime.stop()
        link.close()


def _serve(link: Link, runtime: RuntimeProcess, peak: int) -> None:
    send, recv, readable = link.send, link.recv, link.readable
    decode, encode = wire.decode_to_worker, wire.encode_header
    while True:
        message = decode(recv())
        if type(message) is wire.Stop:
            return
        init_ns = 0
        if runtime.process is None and runtime.failure is None:  # it ended after a reply
            remaining_ns = (message.deadline_ms - time.time_ns() // 1_000_000) * 1_000_000
            runtime.start(monotonic_ns() + remaining_ns)  # counts against the timeout
            init_ns = runtime.init_ns
        started = monotonic_ns()
        failure = runtime.failure
        if failure is None:
            payload, error_type = runtime.invoke(message)
        else:
            payload, error_type = failure.payload(message.request_id), failure.error_type
            os.write(1, failure.log_lines(message.request_id))
        duration = monotonic_ns() - started
        rss_kb = max_rss_kb() if peak >= 0 else max(max_rss_kb(), runtime.peak_rss_kb())
        _wait_taken(link)  # the last part of a streamed response
        send(encode(wire.Reply(message.request_id, duration, error_type,
                               memory_used_kb(peak, rss_kb), payload, failure is not None,
                               init_ns)))
        if failure is None:
            runtime.await_next(readable())


def _send_part(link: Link, api: RuntimeApi, data: bytes) -> None:
    """Pass a part of the invocation's streamed response on to the front-end."""
    _wait_taken(link)
    link.send(wire.encode_header(wire.Chunk(api.current or "", data, api.content_type)))
    api.content_type = ""


def _wait_taken(link: Link) -> None:
    """Wait until the front-end took the last message: the lane holds one at a time.
    Parts come milliseconds apart; the front-end takes each within microseconds."""
    while not link.delivered():
        time.sleep(_TAKEN_POLL_S)


def _reason(returncode: int) -> str:
    return exit_reason(-1, -returncode) if returncode < 0 else exit_reason(returncode, 0)


def _die_with(parent: int) -> None:
    """In the runtime's child process, before exec: die when the worker dies."""
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # the worker died before the signal was armed
        os._exit(1)


def _end_like(returncode: int) -> None:
    """End this worker as its runtime ended, so the supervisor reports that end."""
    if returncode < 0:
        if -returncode not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    os._exit(returncode if returncode >= 0 else 1)
