"""The front-end's own Ray node: its workers are this process's, reached over the
shared-memory hop, no socket crossed.

No agent and no node process there: an ``Engine`` in this process forks the workers (with
the cgroups and sandbox a node process gives) and its dispatcher reaches them as a local
``Invoker``'s does.  A thread of its own reads their replies and hands each ``Done`` to the
front-end (``on_done``, with the front-end's lock held and the engine's not: the two locks
are always taken front-end first, never the other way).
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable

import msgspec

from . import protocol
from .engine import Engine
from .link import NodeLink


class LocalNode(NodeLink):
    def __init__(self, node_id: str, settings: protocol.Start, lock: threading.Lock,
                 on_done: Callable[[NodeLink, protocol.Done], None],
                 on_recycled: Callable[[NodeLink, protocol.Recycled], None],
                 state_dir: str) -> None:
        super().__init__(node_id)
        self.engine = Engine(settings, [state_dir])  # this process's: never to be bound
        self._lock = lock
        self._on_done = on_done
        self._on_recycled = on_recycled
        self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="fastinvoke-local-node",
                                        daemon=True)
        self._thread.start()

    def send(self, message: protocol.ToNode) -> None:
        if type(message) is protocol.Deploy:  # its code directory is on this machine
            message = msgspec.structs.replace(message, code_sha256="", code=b"")
        self.engine.handle(message)

    def _run(self) -> None:
        engine = self.engine
        engine.loop_thread = threading.get_ident()
        replies, outbox_fd, outbox = engine.dispatcher.fd, engine.outbox_fd, engine.outbox
        poller = select.poll()
        for fd in (replies, outbox_fd, self._stop_fd):
            poller.register(fd, select.POLLIN)
        while True:
            events = dict(engine.wait(poller.poll, None))
            if self._stop_fd in events:
                return
            engine.collect(replies in events)
            if outbox_fd in events:
                engine.clear_outbox_fd()
            if outbox:
                with self._lock:
                    while outbox:
                        record = outbox.popleft()
                        if type(record) is protocol.Done:
                            self._on_done(self, record)
                        else:
                            self._on_recycled(self, record)

    def close(self) -> None:
        os.eventfd_write(self._stop_fd, 1)
        self._thread.join()
        self.engine.close()
        os.close(self._stop_fd)
