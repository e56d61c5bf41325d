"""Helpers shared by the tests: waiting on a condition, processes seen through /proc, logs."""

from __future__ import annotations

import base64
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any, TypeVar

FUNCTIONS = str(Path(__file__).resolve().parent / "functions")

# The conftest fixtures' types: make_invoker(**Invoker kwargs), make_function(handler, ...).
MakeInvoker = Callable[..., Any]
MakeFunction = Callable[..., str]

T = TypeVar("T")

# A new X-Ray trace header, as every invocation gets one (its _X_AMZN_TRACE_ID).
TRACE_ID = re.compile(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
# Tab-separated fields, each followed by a tab, in this order (docs/lambda-behaviour.md,
# "The REPORT line and billing").
REPORT_RE = re.compile(
    rf"^REPORT RequestId: (?P<request_id>{UUID})\t"
    r"Duration: (?P<duration>\d+\.\d{2}) ms\t"
    r"Billed Duration: (?P<billed>\d+) ms\t"
    r"Memory Size: (?P<memory>\d+) MB\t"
    r"Max Memory Used: (?P<max_used>\d+) MB\t"
    r"(?:Init Duration: (?P<init>\d+\.\d{2}) ms\t)?"
    r"(?:Status: (?P<status>[a-z]+)\t(?:Error Type: (?P<error_type>[A-Za-z.]+)\t)?)?$"
)


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.005,
               message: str | Callable[[], str] = "") -> T:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout``
    seconds pass (AssertionError).  For what has no event to wait on, like a process
    ending that is not our child."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"condition not met within {timeout} s: {text or predicate}")
        time.sleep(interval)


# -- processes ---------------------------------------------------------------------------

def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid`` from /proc, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(b")") + 2:].split()  # the name may hold spaces and parens
    return fields[0].decode(), int(fields[1])


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie has ended: it is not alive)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X", "x")


def parent_of(pid: int) -> int | None:
    stat = _stat(pid)
    return None if stat is None else stat[1]


def descendants(pid: int, include_zombies: bool = False) -> set[int]:
    """Every transitive child of ``pid`` (from a scan of /proc), without ``pid``."""
    children: dict[int, list[int]] = {}
    states: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is not None:
            states[int(entry)] = stat[0]
            children.setdefault(stat[1], []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    if not include_zombies:
        found = {p for p in found if states.get(p) not in ("Z", "X", "x")}
    return found


def describe(pids: set[int]) -> str:
    """``pid (cmdline)`` for each pid, for assertion messages."""
    out = []
    for pid in sorted(pids):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                cmd = file.read().replace(b"\0", b" ").decode(errors="replace")[:150]
            if not cmd:  # a zombie has no command line left, only its name
                with open(f"/proc/{pid}/comm") as file:
                    cmd = file.read().strip()
        except OSError:
            cmd = "?"
        out.append(f"{pid} [{(_stat(pid) or ('gone',))[0]}] {cmd}")
    return "; ".join(out)


def kill_all(pids: set[int] | list[int]) -> None:
    """SIGKILL whatever of ``pids`` still exists (cleanup after a failed test)."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, 9)


def read_line(process: subprocess.Popen[bytes], timeout: float = 30.0,
              stream: IO[bytes] | None = None) -> bytes:
    """The next line ``process`` writes to its stdout pipe (or ``stream``, another of its
    pipes), waiting at most ``timeout``."""
    stream = process.stdout if stream is None else stream
    assert stream is not None
    line = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"no line from pid {process.pid} within {timeout} s: {line!r}")
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                raise AssertionError(f"pid {process.pid} closed stdout: {line!r}")
            line += chunk
    return line


def stderr_line_with(process: subprocess.Popen[bytes], text: str,
                     timeout: float = 30.0) -> str:
    """The first line ``process`` writes to its stderr pipe that contains ``text`` (each
    line waited for at most ``timeout``)."""
    while text not in (line := read_line(process, timeout, process.stderr).decode()):
        pass
    return line

def processes_mentioning(text: str) -> set[int]:
    """Every live process whose command line holds ``text`` (a state directory: its
    templates and workers name it), whoever its parent is now."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                cmdline = file.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and alive(int(entry)):
            found.add(int(entry))
    return found


# A web server that is not Lambda's: it answers every request 404 with an HTML page.
NOT_FOUND_SERVER = """
import http.server, sys
class NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_error(404)
    do_POST = do_GET
http.server.test(HandlerClass=NotFound, port=int(sys.argv[1]), bind="127.0.0.1")
"""


@contextmanager
def other_http_server(port: int = 0, script: str | None = None) -> Iterator[int | None]:
    """Another program holding a port: ``python -m http.server PORT`` (bound as a user
    runs it: all addresses), or ``script`` (which serves as ``http.server.test`` does,
    on ``sys.argv[1]``), in a subprocess.  Yields its port once it listens, or None
    when ``port`` was already taken (by whatever holds it)."""
    command = ([sys.executable, "-u", "-m", "http.server", str(port)] if script is None
               else [sys.executable, "-u", "-c", script, str(port)])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=tempfile.gettempdir())
    try:
        try:
            line = read_line(process, timeout=30)  # "Serving HTTP on HOST port N (...) ..."
        except AssertionError:
            assert process.stderr is not None
            if process.wait(timeout=30) != 0 and b"Address already in use" in \
                    process.stderr.read():
                yield None
                return
            raise
        match = re.search(rb" port (\d+) ", line)
        assert match is not None, line
        yield int(match[1])
    finally:
        process.terminate()
        process.wait(timeout=30)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


@contextmanager
def notify_socket(timeout: float = 15.0) -> Iterator[tuple[socket.socket, str]]:
    """A Unix datagram socket a handler can send to (``sleeper`` with ``notify``): the
    test learns that an invocation is running by receiving, never by sleeping."""
    directory = tempfile.mkdtemp(prefix="fi-", dir="/tmp")  # short: sun_path is 108 bytes
    path = os.path.join(directory, "n")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        sock.settimeout(timeout)
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(directory)


# -- results and logs --------------------------------------------------------------------

def document(result: Any) -> Any:
    """The JSON payload of an ``InvokeResult`` (key order kept)."""
    return json.loads(result.payload)


def tail_text(result: Any) -> str:
    """The decoded ``X-Amz-Log-Result`` of an invocation made with ``log_type="Tail"``."""
    assert result.log_result is not None
    return base64.b64decode(result.log_result).decode()


def report_of(text: str) -> re.Match[str]:
    """The parsed REPORT line of one invocation's log text (START ... REPORT)."""
    lines = [line for line in text.split("\n") if line.startswith("REPORT ")]
    assert len(lines) == 1, text
    match = REPORT_RE.match(lines[0])
    assert match is not None, f"REPORT line not in Lambda's format: {lines[0]!r}"
    return match


def log_of(invoker: Any, function: str, request_id: str) -> str | None:
    """The log text (START to REPORT) of one invocation, or None when not logged yet."""
    for record in invoker.logs(function):
        if record.request_id == request_id:
            return record.message
    return None


# -- runtimes other than Python ----------------------------------------------------------

def _node_runtime() -> str | None:
    from fastinvoke.config import local_node
    from fastinvoke.runtime.launch import NODE_RUNTIMES

    local = local_node()
    runtime = None if local is None else f"nodejs{local[1]}.x"
    return runtime if runtime in NODE_RUNTIMES else None


# The nodejs runtime that matches this machine's node (no "runs on this machine's" warning).
NODE_RUNTIME = _node_runtime()
NO_NODE = ("needs Node.js 18, 20 or 22 as `node` on the PATH (the nodejs18.x, nodejs20.x and "
           "nodejs22.x runtimes): install one to run the Node.js runtime tests")
# Node.js start-up under a 128 MB function's CPU share (7 % of a vCPU) takes seconds:
# tests give their functions one full vCPU unless they test the share itself.
ONE_VCPU_MB = 1769


def write_code(directory: Path, files: dict[str, str], executable: tuple[str, ...] = ()) -> str:
    """Write ``files`` (relative path -> text) under ``directory``; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name in executable:
            path.chmod(0o755)
    return str(directory)


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` in /proc (``T`` when stopped), None when gone."""
    stat = _stat(pid)
    return None if stat is None else stat[0]


def sandbox_layout_problem() -> str | None:
    """Why this checkout cannot be sandboxed (Python or fastinvoke under /tmp, which each
    sandbox replaces: a clone in /tmp), or None."""
    from fastinvoke.runtime import sandbox

    try:
        sandbox.check_layout()
    except sandbox.SandboxUnavailable as exc:
        return exc.reason
    return None


def function_resource(logical_id: str, name: str, handler: str, properties: str = "",
                      record_to: Path | None = None, code: str | Path = FUNCTIONS,
                      runtime: str | None = None) -> str:
    """A SAM function (of tests/functions unless ``code`` says, on this Python unless
    ``runtime`` says), as the YAML of one entry of ``Resources:``; ``properties``: more
    of its properties (indented six spaces); ``record_to``: the recorder's file (its
    RECORD_TO)."""
    if record_to is not None:
        properties = (f"      Environment:\n        Variables:\n          RECORD_TO: "
                      f"{record_to}\n{properties}")
    runtime = runtime or f"python3.{sys.version_info.minor}"
    return (f"  {logical_id}:\n    Type: AWS::Serverless::Function\n    Properties:\n"
            f"      FunctionName: {name}\n      Runtime: {runtime}\n"
            f"      CodeUri: {code}\n      Handler: {handler}\n{properties}")
