"""A node process: one front-end's workers on one Ray node (``engine``), behind a ZeroMQ
ROUTER socket that only the front-end's CURVE key may reach.

Started by the node's agent (``python -m fastinvoke.cluster.node``, its ``Start`` on
stdin), it binds the node's address on a free port and prints the endpoint.  It ends when
its stdin closes (the agent stops it for the front-end, or the agent itself ended) or
when the front-end has been silent for ``orphan_after_s`` (the front-end crashed): its
templates and workers end with it and its cgroups are removed, so a lost front-end leaves
nothing behind.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import zmq
import zmq.auth.thread

from .._core import Channel, monotonic_ns
from ..channel import DONTWAIT, SNDMORE, PyzmqChannel, open_channel
from . import protocol
from .engine import Engine

_log = logging.getLogger("fastinvoke.node")

BEAT_S = 0.25  # how often the node tells the front-end it is alive
SPIN_NS = 100_000  # how long the loop spins for a reply rather than sleep (idle_behind)
# Answers held back while their workers have more queued (Engine.answers_can_wait) go
# out after this long or this many at the latest.
HOLD_NS = 1_000_000
HOLD_AT_MOST = 64
FRONT_END = b"rx"  # the routing id of the front-end's receiving socket


class _OnlyClient:
    """ZAP: accept the one CURVE client key the front-end gave (z85)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def callback(self, domain: str, key: bytes) -> bool:
        return key == self.key


class Node:
    """The engine and its ROUTER socket; ``serve`` is the main loop, the one thread that
    uses the socket."""

    def __init__(self, start: protocol.Start) -> None:
        self.orphan_after_s = start.orphan_after_s
        self.engine = Engine(start)
        self.context = zmq.Context(1)
        self._auth = zmq.auth.thread.ThreadAuthenticator(self.context)
        self._auth.start()
        self._auth.configure_curve_callback("*", _OnlyClient(start.client_public))
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.curve_server = True
        self.socket.curve_publickey = start.curve_public
        self.socket.curve_secretkey = start.curve_secret
        port = self.socket.bind_to_random_port(f"tcp://{start.host}")
        self.endpoint = f"tcp://{start.host}:{port}"

    def serve(self, stdin: int) -> None:
        """Until the agent ends or closes our stdin (the front-end's stop), or the
        front-end falls silent."""
        socket, engine = self.socket, self.engine
        channel = open_channel(socket)  # the invoke path's calls, on libzmq directly
        engine.loop_thread = threading.get_ident()
        replies, outbox_fd = engine.dispatcher.fd, engine.outbox_fd
        poller = zmq.Poller()
        for watched in (socket, replies, outbox_fd, stdin):
            poller.register(watched, zmq.POLLIN)
        decode, encode, outbox = protocol.decode_to_node, protocol.encode, engine.outbox
        beat = encode(protocol.Beat())
        heard = next_beat = time.monotonic()
        held: list[protocol.Done] = []
        held_until = 0
        while True:
            if engine.idle_behind() and engine.dispatcher.spin_for_reply(SPIN_NS):
                events = dict(poller.poll(0))
            else:
                # Whole milliseconds, rounded up: zmq truncates a fraction to 0, and the
                # loop would spin until the hold ends, taking the workers' CPU.
                wait_ms = (max(0, -(-(held_until - monotonic_ns()) // 1_000_000)) if held
                           else BEAT_S * 1000)
                events = dict(engine.wait(poller.poll, wait_ms))
            if stdin in events:
                return  # the agent ended (or closed our stdin to stop us)
            if socket in events:
                heard = time.monotonic()
                while channel.readable():
                    channel.recv(DONTWAIT)  # the sender's routing id: only ours gets in
                    frame = channel.recv(DONTWAIT)
                    try:
                        engine.handle(decode(frame))
                    except Exception:
                        _log.exception("fastinvoke node: a message failed; the node goes on")
            engine.collect(replies in events)
            if outbox_fd in events:
                engine.clear_outbox_fd()
            if outbox:
                if not held:
                    held_until = monotonic_ns() + HOLD_NS
                while outbox:  # other threads may add to it meanwhile: popleft, not clear
                    record = outbox.popleft()
                    if type(record) is protocol.Done:
                        held.append(record)
                    else:
                        _send(channel, encode(record))
            if held and (len(held) >= HOLD_AT_MOST or monotonic_ns() >= held_until
                         or not engine.answers_can_wait()):
                _send(channel, encode(protocol.Finished(held)))
                held = []
                engine.answers_sent()
            now = time.monotonic()
            if now >= next_beat:
                _send(channel, beat)
                next_beat = now + BEAT_S
            if now - heard > self.orphan_after_s:
                _log.warning("fastinvoke node: the front-end has been silent for %.0f s; "
                             "stopping its workers", now - heard)
                return

    def close(self) -> None:
        self.engine.close()
        self._auth.stop()
        self.socket.close()
        self.context.term()


def _send(channel: Channel | PyzmqChannel, data: bytes) -> None:
    """Send ``data`` to the front-end's receiving socket."""
    channel.send(FRONT_END, SNDMORE)
    channel.send(data)


def _return_to_priority(niceness: int | None) -> None:
    """Run at the node's own priority, not at the niceness Ray gives its workers (15):
    behind every other process of the node, functions would wait whenever it is busy.
    Before any thread starts: a niceness is per thread, and inherited by new ones and by
    the templates and workers this process forks."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness is None or niceness >= current:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except PermissionError:
        _log.warning("fastinvoke node: Ray started this node's agent at niceness %d and "
                     "this process may not return to the node's %d (that takes root or "
                     "CAP_SYS_NICE): its functions run behind every other process here. "
                     "Start Ray with RAY_worker_niceness=%d to avoid it",
                     current, niceness, niceness)


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    start = protocol.decode_start(sys.stdin.buffer.readline())
    if start.protocol != protocol.PROTOCOL:
        sys.exit(f"fastinvoke node: protocol {start.protocol} asked, {protocol.PROTOCOL} "
                 "spoken: install the same fastinvoke on every node")
    _return_to_priority(start.niceness)
    node = Node(start)
    try:
        sys.stdout.write(node.endpoint + "\n")
        sys.stdout.flush()
        node.serve(sys.stdin.fileno())
    finally:
        node.close()


if __name__ == "__main__":
    main()
