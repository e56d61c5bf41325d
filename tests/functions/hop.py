"""Handlers for the local-hop tests (tests/test_local_hop.py): each answer names the worker
(its pid) and the request it ran for, so a test can tell whose answer a caller got.

``handler`` takes a dict event:

* ``hold``: a Unix stream socket path.  The handler connects, sends one JSON line
  ``{"id", "pid", "request_id"}`` and blocks until the test answers a JSON line (its
  ``word``): the test learns, without sleeping, that the invocation runs, and decides when
  it ends.  A blocked handler uses no CPU.
* ``record``: a directory; the handler appends a line to ``<dir>/ran`` (one per run).
* ``die``: ``exit`` (os._exit(3)), ``kill`` (SIGKILL itself) or ``segv`` (a real
  segmentation fault through ctypes) — the runtime ends mid-invocation.
* ``burn_cpu_s``: busy-loop until this much CPU time was used.

It returns ``{"id", "pid", "request_id", "word", "echo"}`` (``echo``: the event's
``echo``, unchanged).
"""

import base64
import ctypes
import hashlib
import json
import os
import random
import signal
import socket
import sys
import time


def handler(event, context):
    word = None
    if "hold" in event:
        word = _hold(event["hold"], {"id": event.get("id"), "pid": os.getpid(),
                                     "request_id": context.aws_request_id})
    if "record" in event:
        line = json.dumps({"id": event.get("id"), "pid": os.getpid(),
                           "request_id": context.aws_request_id}) + "\n"
        fd = os.open(os.path.join(event["record"], "ran"),
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    die = event.get("die")
    if die == "exit":
        os._exit(3)
    elif die == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif die == "segv":
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)  # no faulthandler in the way
        ctypes.string_at(0)  # reads address 0
    if "burn_cpu_s" in event:
        end = time.process_time() + event["burn_cpu_s"]
        while time.process_time() < end:
            pass
    return {"id": event.get("id"), "pid": os.getpid(), "request_id": context.aws_request_id,
            "word": word, "echo": event.get("echo")}


def _hold(path, hello):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(json.dumps(hello).encode() + b"\n")
        with sock.makefile("rb") as answers:
            line = answers.readline()
    return json.loads(line) if line else None


def digest(event, context):
    """The event's size and SHA-256: a JSON string (its characters, UTF-8) or anything else
    (its canonical JSON)."""
    data = event.encode() if isinstance(event, str) else json.dumps(event).encode()
    return {"length": len(event) if isinstance(event, str) else len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "pid": os.getpid()}


def blob(event, context):
    """``blob_text(seed, size)`` (a JSON string ``size`` + 2 bytes long), or with
    ``raw`` ``blob_bytes(seed, size)`` returned as raw bytes, not JSON."""
    if event.get("raw"):
        return blob_bytes(event["seed"], event["size"])
    return blob_text(event["seed"], event["size"])


def blob_bytes(seed, size):
    """``size`` pseudo-random bytes (every byte value), the same for the same seed."""
    return random.Random(seed).randbytes(size)


def blob_text(seed, size):
    """``size`` pseudo-random base64 characters: no JSON escapes, so its JSON is exactly
    ``size`` + 2 bytes."""
    return base64.b64encode(blob_bytes(seed, size * 3 // 4 + 3)).decode()[:size]


def chatty(event, context):
    """Prints ``lines`` numbered lines of ``width`` bytes each, newline included (in one
    write), then one line more, and returns the count and its pid."""
    lines, width = event["lines"], event["width"]
    filler = "x" * max(0, width - 15)
    sys.stdout.write("".join(f"line {n:08d} {filler}\n" for n in range(lines)))
    print("printed all", lines)
    return {"lines": lines, "pid": os.getpid()}
