"""The front-end's links to nodes.

A node process on another node (``RemoteNode``) gets two DEALER sockets, both CURVE
clients of the node's ROUTER: ``tx`` carries what the front-end sends, only ever with the
dispatcher's lock held (so any caller thread may send an invocation itself, as it writes
a local worker's lane), and ``rx`` what the node answers, read by one thread at a time
(``relay``).  A ZeroMQ socket is used by one thread at a time; the lock makes ``tx`` so.
(The front-end's own node is a ``local.LocalNode``.)
"""

from __future__ import annotations

import abc
import time

import zmq

from ..channel import DONTWAIT, open_channel
from . import protocol

LOST_AFTER_S = 1.5  # silence after which a node is lost (it beats every 0.25 s)


class Keys:
    """The CURVE keys of one cluster run, made in memory (never written to a file): the
    nodes' pair and the front-end's."""

    def __init__(self) -> None:
        self.node_public, self.node_secret = zmq.curve_keypair()
        self.client_public, self.client_secret = zmq.curve_keypair()


class NodeLink(abc.ABC):
    """A node's workers, as the front-end sees them: what it deployed there and how many
    slots it holds there.  Used with the dispatcher's lock held.  How messages reach the
    node is its kind's: ``RemoteNode`` (ZeroMQ) or ``local.LocalNode`` (this process)."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.up = True
        self.deployed: dict[str, int] = {}  # function -> generation sent to the node
        self.slots: dict[str, int] = {}  # function -> slots the front-end holds there
        self.code: set[str] = set()  # sha256 of the code packages the node has

    @abc.abstractmethod
    def send(self, message: protocol.ToNode) -> None: ...

    def resize(self, function: str, change: int) -> None:
        """Give the node ``change`` more (or fewer) slots of ``function``."""
        count = self.slots[function] = self.slots.get(function, 0) + change
        if self.up:
            self.send(protocol.Resize(function, count))

    @abc.abstractmethod
    def close(self) -> None: ...


class RemoteNode(NodeLink):
    """A node process on another node, over ZeroMQ.  ``last_heard`` is the relay
    thread's."""

    def __init__(self, context: zmq.Context, node_id: str, endpoint: str, keys: Keys) -> None:
        super().__init__(node_id)
        self.endpoint = endpoint
        self.last_heard = time.monotonic()
        self.tx = _client(context, keys, b"tx", endpoint)
        self.rx = _client(context, keys, b"rx", endpoint)
        # Their invoke-path calls, made on libzmq directly.
        self.sending = open_channel(self.tx)
        self.receiving = open_channel(self.rx)
        self._held: list[protocol.ToNode] | None = None  # while the relay holds sends

    def send(self, message: protocol.ToNode) -> None:
        if self._held is not None:
            self._held.append(message)
        else:
            self.sending.send(protocol.encode(message), DONTWAIT)

    def hold(self) -> None:
        """Keep what is sent from now until ``flush``, to send it as one frame."""
        self._held = []

    def flush(self) -> None:
        held, self._held = self._held, None
        if held:
            self.send(held[0] if len(held) == 1 else protocol.Several(held))

    def send_bytes(self, data: bytes) -> None:
        self.sending.send(data, DONTWAIT)

    def close(self) -> None:
        self.tx.close(linger=0)
        self.rx.close(linger=0)


def _client(context: zmq.Context, keys: Keys, routing_id: bytes,
            endpoint: str) -> zmq.Socket:
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 0)
    socket.setsockopt(zmq.RCVHWM, 0)
    socket.setsockopt(zmq.ROUTING_ID, routing_id)
    socket.curve_serverkey = keys.node_public
    socket.curve_publickey = keys.client_public
    socket.curve_secretkey = keys.client_secret
    socket.connect(endpoint)
    return socket
