"""A ZeroMQ socket's invoke-path operations: send, receive, "is a message waiting?".

``open_channel(socket)`` returns ``_core.Channel``, which calls libzmq directly (the
library pyzmq loaded), or, where that library cannot be found in this process's memory
map, a wrapper of pyzmq's own calls with the same three methods.
"""

from __future__ import annotations

import zmq

from . import _core

SNDMORE = int(zmq.SNDMORE)
DONTWAIT = int(zmq.DONTWAIT)


class PyzmqChannel:
    """The same interface as ``_core.Channel``, through pyzmq."""

    __slots__ = ("socket",)

    def __init__(self, socket: zmq.Socket) -> None:
        self.socket = socket

    def readable(self) -> bool:
        return bool(self.socket.get(zmq.EVENTS) & zmq.POLLIN)

    def send(self, data: bytes, flags: int = 0) -> None:
        self.socket.send(data, flags)

    def recv(self, flags: int = 0) -> bytes:
        return self.socket.recv(flags)


def _loaded_libzmq() -> str | None:
    """The path of the libzmq that pyzmq loaded, from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if "/libzmq" in path:
                    return path
    except OSError:
        pass
    return None


def _bind() -> bool:
    path = _loaded_libzmq()
    if path is None:
        return False
    try:
        _core.bind_libzmq(path)
    except ImportError:
        return False
    return True


_DIRECT = _bind()


def open_channel(socket: zmq.Socket) -> _core.Channel | PyzmqChannel:
    """The fastest available channel over ``socket`` (pyzmq keeps owning it)."""
    return _core.Channel(socket) if _DIRECT else PyzmqChannel(socket)
