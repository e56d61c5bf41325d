"""The floor of fastinvoke's design: bare pyzmq + msgspec processes, no bookkeeping.

Servers are forked from the measuring process *before* it creates its own ZeroMQ
context (a context never crosses a fork), as fastinvoke's template forks workers.  Every
child asks for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG), so a killed run
leaves nothing behind; ``forked`` also stops and reaps it on the way out.

The hot loops call pyzmq's Cython socket methods directly, as fastinvoke's do, so the
baseline is not slowed by wrappers fastinvoke itself avoids.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable, Iterator

import msgspec
import zmq

_PR_SET_PDEATHSIG = 1
send = zmq.backend.Socket.send
recv = zmq.backend.Socket.recv
SNDMORE = int(zmq.SNDMORE)
decode = msgspec.json.decode
encode = msgspec.json.encode


@contextlib.contextmanager
def forked(target: Callable[..., None], *args: object) -> Iterator[int]:
    """Run ``target(*args)`` in a forked child for the duration of the block."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            target(*args)
            status = 0
        finally:
            os._exit(status)
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def serve_echo(endpoint: str) -> None:
    """ROUTER: decode the event, add, reply with the encoded sum (latency baseline)."""
    context = zmq.Context(1)
    sock = context.socket(zmq.ROUTER)
    sock.bind(endpoint)
    while True:
        peer = recv(sock)
        event = decode(recv(sock))
        send(sock, peer, SNDMORE)
        send(sock, encode(event["value1"] + event["value2"]), 0)


def serve_worker(endpoint: str, identity: bytes) -> None:
    """DEALER worker: say hello, then answer ``[tag, event]`` with ``[tag, sum]``, one at a
    time (ZeroMQ queues whatever else the driver sends it)."""
    context = zmq.Context(1)
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.connect(endpoint)
    send(sock, b"", 0)
    while True:
        tag = recv(sock)
        event = decode(recv(sock))
        send(sock, tag, SNDMORE)
        send(sock, encode(event["value1"] + event["value2"]), 0)


def recv_within(sock: zmq.Socket, timeout_ms: int) -> bytes:
    """Receive one frame, or fail loudly: the readiness probe never waits forever."""
    if not sock.poll(timeout_ms):
        raise TimeoutError(f"no message within {timeout_ms} ms")
    return recv(sock)
