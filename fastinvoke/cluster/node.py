"""A node process: one front-end's workers on one Ray node.

Started by the node's agent (``python -m fastinvoke.cluster.node``, its ``Start`` on
stdin), it runs the local pool exactly as an ``Invoker`` does (templates forked into
workers, cgroups, the sandbox, deadlines, crash and out-of-memory reports) behind a
ZeroMQ ROUTER socket: the front-end deploys functions to it, gives it slots and sends it
invocations; it answers each with a ``Done`` carrying everything the front-end meters and
logs.  It has no admission of its own (the front-end admitted every invocation), no
meters, no logs and no Event queue.

It ends when told to, when its agent ends (its stdin closes) or when the front-end has
been silent for ``orphan_after_s`` (the front-end crashed): its templates and workers end
with it and its cgroups are removed, so a lost front-end leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections import deque

import msgspec
import zmq
import zmq.auth.thread

from .. import wire
from ..admission import Admission
from ..config import FunctionConfig
from ..dispatch import Dispatcher
from ..metering import new_meter
from ..pool.budget import MemoryBudget
from ..pool.cgroups import detect
from ..pool.records import FunctionPool, Invocation
from ..pool.supervisor import Supervisor
from . import protocol

_log = logging.getLogger("fastinvoke.node")

BEAT_S = 0.25  # how often the node tells the front-end it is alive
FRONT_END = b"rx"  # the routing id of the front-end's receiving socket


class _OnlyClient:
    """ZAP: accept the one CURVE client key the front-end gave (z85)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def callback(self, domain: str, key: bytes) -> bool:
        return key == self.key


class Node:
    """The node's pool and its ROUTER socket; ``serve`` is its main loop."""

    def __init__(self, start: protocol.Start) -> None:
        self.start = start
        self.state_dir = tempfile.mkdtemp(prefix=f"fastinvoke-node-{start.run}-")
        budget = MemoryBudget(None)
        # No throttling here: the front-end admitted every invocation it sends.
        self.dispatcher = Dispatcher(Admission(sys.maxsize, None, budget), _unmetered)
        groups = None
        if start.memory_limits or start.cpu_limits != "off":
            groups = detect().instance(f"{os.getpid()}.node")
        self.supervisor = Supervisor(
            self.dispatcher, self.state_dir, start.region, start.keep_warm_s, budget, groups,
            start.cpu_limits, start.memory_limits, spare_workers=False, sandbox=start.sandbox,
            read_replies=False)
        self.dispatcher.attach(self.supervisor.workers, self.supervisor.alarm)
        self.supervisor.start()
        self.pools: dict[str, FunctionPool] = {}
        self._generations: dict[str, int] = {}
        self._code: dict[str, str] = {}  # code sha256 -> its unpacked directory
        self._outbox: deque[bytes] = deque()  # Done messages, from any thread
        self._outbox_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._main_thread = threading.get_ident()  # the one that uses the socket
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

    # -- what the front-end asks -------------------------------------------------------------

    def _on_message(self, message: protocol.ToNode) -> bool:
        """Handle one message; False means stop."""
        kind = type(message)
        if kind is protocol.Run:
            self._run(message)
        elif kind is protocol.Deploy:
            self._deploy(message)
        elif kind is protocol.Resize:
            self._resize(message)
        elif kind is protocol.Undeploy:
            self._undeploy(message.function)
        elif kind is protocol.Shutdown:
            return False
        return True

    def _run(self, run: protocol.Run) -> None:
        request = wire.decode_to_worker(run.invoke)
        pool = self.pools.get(run.function)
        if pool is None or type(request) is not wire.Invoke:
            return  # undeployed meanwhile: the front-end failed it already
        invocation = Invocation(request.request_id, pool, request.event, request.invoked_arn,
                                request.client_context)
        invocation.identity = request.identity
        invocation.trace_id = request.trace_id
        invocation.source = run.slot
        invocation.callback = self._done
        with self.dispatcher.lock:
            self.dispatcher.enqueue(invocation)

    def _deploy(self, deploy: protocol.Deploy) -> None:
        code = self._code.get(deploy.code_sha256)
        if code is None:
            code = self._code[deploy.code_sha256] = self._unpack(deploy)
        # Concurrency is the front-end's: here a function has as many workers as slots.
        config = msgspec.structs.replace(
            msgspec.json.decode(deploy.config, type=FunctionConfig), code=code,
            reserved_concurrency=None, provisioned=0)
        with self.dispatcher.lock:
            pool = self.pools.get(deploy.function)
            if pool is None:
                pool = self.pools[deploy.function] = FunctionPool(config, new_meter("classic"), 0)
                self.supervisor.add(pool)
            elif self._generations[deploy.function] != deploy.generation:
                pool.config = config
                self.supervisor.renew(pool)
            self._generations[deploy.function] = deploy.generation

    def _unpack(self, deploy: protocol.Deploy) -> str:
        digest = hashlib.sha256(deploy.code).hexdigest()
        if digest != deploy.code_sha256:
            raise ValueError(f"code of {deploy.function} arrived damaged ({digest})")
        directory = os.path.join(self.state_dir, "code", digest)
        with zipfile.ZipFile(io.BytesIO(deploy.code)) as archive:
            archive.extractall(directory)
            for info in archive.infolist():
                mode = info.external_attr >> 16  # zip keeps Unix modes here (scripts: +x)
                if mode:
                    os.chmod(os.path.join(directory, info.filename), mode & 0o7777)
        return directory

    def _resize(self, resize: protocol.Resize) -> None:
        with self.dispatcher.lock:
            pool = self.pools.get(resize.function)
            if pool is None:
                return
            pool.max_workers = resize.workers
            workers = self.supervisor.workers
            for worker in self.dispatcher.core.idle_workers(pool.name):
                if len(pool.workers) <= resize.workers:
                    break
                workers.stop(workers.records[worker])

    def _undeploy(self, function: str) -> None:
        with self.dispatcher.lock:
            pool = self.pools.pop(function, None)
            if pool is not None:
                self.supervisor.remove(pool)

    # -- what the node answers ---------------------------------------------------------------

    def _done(self, invocation: Invocation) -> None:
        """An invocation ended (dispatcher lock held, any thread): queue its Done for the
        main loop, which alone uses the socket."""
        self._outbox.append(protocol.encode(protocol.Done(
            invocation.source, invocation.request_id, invocation.outcome,
            invocation.error_type, invocation.payload, invocation.duration_ns,
            invocation.max_rss_kb, invocation.init_ns if invocation.cold else 0,
            invocation.cold, invocation.log, invocation.log_stream)))
        if threading.get_ident() != self._main_thread:
            os.eventfd_write(self._outbox_fd, 1)

    # -- the main loop -----------------------------------------------------------------------

    def serve(self, stdin: int) -> None:
        """Until told to stop, the agent ends or the front-end falls silent."""
        socket, dispatcher = self.socket, self.dispatcher
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(dispatcher.fd, zmq.POLLIN)
        poller.register(self._outbox_fd, zmq.POLLIN)
        poller.register(stdin, zmq.POLLIN)
        dispatcher.bell.raise_()  # workers always wake this loop: it reads every reply
        decode, outbox = protocol.decode_to_node, self._outbox
        beat = protocol.encode(protocol.Beat())
        heard = next_beat = time.monotonic()
        running = True
        while running:
            events = dict(poller.poll(BEAT_S * 1000))
            if stdin in events:
                return  # the agent ended (or closed our stdin to stop us)
            if socket in events:
                heard = time.monotonic()
                while running:
                    try:
                        _, frame = socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        running = self._on_message(decode(frame))
                    except Exception:
                        _log.exception("fastinvoke node: a message failed; the node goes on")
            if dispatcher.fd in events:
                dispatcher.clear_wake_up()
                with dispatcher.lock:
                    dispatcher.collect()
            if self._outbox_fd in events:
                os.eventfd_read(self._outbox_fd)
            while outbox:
                socket.send_multipart((FRONT_END, outbox.popleft()))
            now = time.monotonic()
            if now >= next_beat:
                socket.send_multipart((FRONT_END, beat))
                next_beat = now + BEAT_S
            if now - heard > self.start.orphan_after_s:
                _log.warning("fastinvoke node: the front-end has been silent for %.0f s; "
                             "stopping its workers", now - heard)
                return

    def close(self) -> None:
        self.supervisor.stop()
        self.dispatcher.close()
        self._auth.stop()
        self.socket.close()
        self.context.term()
        os.close(self._outbox_fd)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _unmetered(invocation: Invocation) -> None:
    """The front-end meters and logs every invocation; the node does not."""


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    start = protocol.decode_start(sys.stdin.buffer.readline())
    if start.protocol != protocol.PROTOCOL:
        sys.exit(f"fastinvoke node: protocol {start.protocol} asked, {protocol.PROTOCOL} "
                 "spoken: install the same fastinvoke on every node")
    node = Node(start)
    try:
        sys.stdout.write(node.endpoint + "\n")
        sys.stdout.flush()
        node.serve(sys.stdin.fileno())
    finally:
        node.close()


if __name__ == "__main__":
    main()
