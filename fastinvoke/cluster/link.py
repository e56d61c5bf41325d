"""The front-end's links to nodes, and the thread that reads the remote ones.

A node process on another node (``RemoteNode``) gets two DEALER sockets, both CURVE
clients of the node's ROUTER: ``tx`` carries what the front-end sends, only ever with the
dispatcher's lock held (so any caller thread may send an invocation itself, as it writes
a local worker's lane), and ``rx`` what the node answers, read by one relay thread for
every node.  A ZeroMQ socket is used by one thread at a time; the lock makes ``tx`` so,
and ``rx`` has one reader.  (The front-end's own node is a ``local.LocalNode``.)

The relay thread completes invocations as the nodes' ``Done`` records arrive (taking the
lock once per burst), pings every node the front-end links to, and declares a node lost
when it has not been heard for ``LOST_AFTER_S``.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable

import zmq

from . import protocol

_log = logging.getLogger("fastinvoke")

LOST_AFTER_S = 1.5  # silence after which a node is lost (it beats every 0.25 s)
PING_EVERY_S = 0.25  # and look for silent nodes
_POLL_MS = 100


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
        self._held: list[protocol.ToNode] | None = None  # while the relay holds sends

    def send(self, message: protocol.ToNode) -> None:
        if self._held is not None:
            self._held.append(message)
        else:
            self.tx.send(protocol.encode(message), zmq.NOBLOCK)

    def hold(self) -> None:
        """Keep what is sent from now until ``flush``, to send it as one frame."""
        self._held = []

    def flush(self) -> None:
        held, self._held = self._held, None
        if held:
            self.send(held[0] if len(held) == 1 else protocol.Several(held))

    def send_bytes(self, data: bytes) -> None:
        self.tx.send(data, zmq.NOBLOCK)

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


class Relay:
    """The thread that reads every node's answers.  ``on_done(link, done)``,
    ``on_recycled(link, recycled)`` and ``on_lost(link)`` are called with ``lock``
    held."""

    def __init__(self, lock: threading.Lock,
                 on_done: Callable[[RemoteNode, protocol.Done], None],
                 on_recycled: Callable[[RemoteNode, protocol.Recycled], None],
                 on_lost: Callable[[RemoteNode], None]) -> None:
        self.lock = lock
        self._on_done = on_done
        self._on_recycled = on_recycled
        self._on_lost = on_lost
        self.links: list[RemoteNode] = []  # changed only with ``lock`` held
        self._retired: list[RemoteNode] = []  # dropped, to close once no longer polled
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fastinvoke-relay",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, link: RemoteNode) -> None:
        """Read ``link`` too (lock held)."""
        self.links = [*self.links, link]

    def retire(self, link: RemoteNode) -> None:
        """Stop reading ``link``, and close it (lock held)."""
        self.links = [other for other in self.links if other is not link]
        self._retired.append(link)

    def stop(self) -> None:
        self._stopping = True
        if self._thread.is_alive():
            self._thread.join()
        self._close_retired()

    def _close_retired(self) -> None:
        with self.lock:  # its tx may be in use until then
            while self._retired:
                self._retired.pop().close()

    def _run(self) -> None:
        poller = zmq.Poller()
        polled: list[RemoteNode] = []
        next_ping = time.monotonic() + PING_EVERY_S
        while not self._stopping:
            if polled != self.links:  # a node came or went: poll the new set
                for link in polled:
                    poller.unregister(link.rx)
                polled = list(self.links)
                for link in polled:
                    poller.register(link.rx, zmq.POLLIN)
                self._close_retired()
            ready = dict(poller.poll(_POLL_MS)) if polled else {}
            if not polled:
                time.sleep(_POLL_MS / 1000)  # nothing to read yet: the next node's link
            now = time.monotonic()
            for link in polled:
                if link.rx in ready:
                    link.last_heard = now
                    self._read(link)
            if now >= next_ping:
                next_ping = now + PING_EVERY_S
                self._ping_and_check(polled, now)

    def _read(self, link: RemoteNode) -> None:
        decode, rx = protocol.decode_from_node, link.rx
        done: list[protocol.Done] = []
        while True:
            try:
                message = decode(rx.recv(zmq.NOBLOCK))
            except zmq.Again:
                break
            kind = type(message)
            if kind is protocol.Finished:
                done += message.done
            elif kind is protocol.Recycled:
                with self.lock:
                    self._on_recycled(link, message)
        if done:
            with self.lock:
                # What these answers let the front-end send (the next invocations) goes
                # to each node as one frame.
                links = self.links
                for each in links:
                    each.hold()
                try:
                    for message in done:
                        self._on_done(link, message)
                finally:
                    for each in links:
                        each.flush()

    def _ping_and_check(self, links: list[RemoteNode], now: float) -> None:
        ping = protocol.encode(protocol.Ping())
        with self.lock:
            for link in links:
                if not link.up:
                    continue
                if now - link.last_heard > LOST_AFTER_S:
                    _log.warning("fastinvoke: Ray node %s has not answered for %.1f s: its "
                                 "invocations fail or run elsewhere", link.node_id,
                                 now - link.last_heard)
                    link.up = False
                    self._on_lost(link)
                else:
                    link.send_bytes(ping)
