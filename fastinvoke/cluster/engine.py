"""A node's pool: one front-end's workers on one Ray node, run exactly as an ``Invoker``
runs them (templates forked into workers, cgroups, the sandbox, deadlines, crash and
out-of-memory reports), with no admission, meters, logs or Event queue of its own: the
front-end admitted every invocation it sends, and meters and logs what comes back.

The engine does what the front-end's messages say (``handle``) and puts a ``Done`` in
``outbox`` for every invocation that ends (and a ``Recycled`` when a recycle is over),
signalling ``outbox_fd`` when that happens on another thread than its owner's loop.  The
owner's loop reads ``dispatcher.fd`` (the workers' replies: ``collect``) and the outbox:
the node process's main loop (``node``), or on the front-end's own node a thread of the
front-end (``local``).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import tempfile
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

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


class Engine:
    def __init__(self, settings: protocol.Start, denied: Sequence[str] = ()) -> None:
        """``denied``: paths no bind into a sandbox may expose, beyond the engine's own
        state directory (the front-end's, for an engine in the front-end's process)."""
        self.state_dir = tempfile.mkdtemp(prefix=f"fastinvoke-node-{settings.run}-")
        budget = MemoryBudget(None)
        # No throttling here: the front-end admitted every invocation it sends.
        # The node's process runs beside the workers that Ray reserved the node's CPUs
        # for: one CPU of them is its own, the others the workers may spin on (Ray's
        # count: on a machine shared by several nodes, the machine's is too many).
        self.dispatcher = Dispatcher(Admission(sys.maxsize, None, budget), _unmetered,
                                     settings.cpus - 1 if settings.cpus else None)
        self.dispatcher.replies_read_elsewhere = True  # by the owner's loop, always
        groups = None
        if settings.memory_limits or settings.cpu_limits != "off":
            groups = detect().instance(f"{os.getpid()}.node")
        self.supervisor = Supervisor(
            self.dispatcher, self.state_dir, settings.region, settings.keep_warm_s, budget,
            groups, settings.cpu_limits, settings.memory_limits, spare_workers=False,
            sandbox=settings.sandbox, denied=denied)
        self.dispatcher.attach(self.supervisor.workers, self.supervisor.alarm)
        self.supervisor.start()
        self.pools: dict[str, FunctionPool] = {}
        self._generations: dict[str, int] = {}
        self._code: dict[str, str] = {}  # code sha256 -> its unpacked directory
        self.outbox: deque[protocol.Done | protocol.Recycled] = deque()
        self._answered: set[FunctionPool] = set()  # pools with a Done not yet sent
        self.outbox_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.loop_thread = 0  # the owner's loop thread, which sets it

    # -- what the front-end asks -------------------------------------------------------------

    def handle(self, message: protocol.ToNode) -> None:
        """Do what ``message`` asks."""
        kind = type(message)
        if kind is protocol.Run:
            self._run(message)
        elif kind is protocol.Deploy:
            self._deploy(message)
        elif kind is protocol.Resize:
            self._resize(message)
        elif kind is protocol.Recycle:
            self._recycle(message)
        elif kind is protocol.Undeploy:
            self._undeploy(message.function)
        elif kind is protocol.Several:
            for each in message.messages:
                self.handle(each)

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
        config = msgspec.json.decode(deploy.config, type=FunctionConfig)
        code = config.code  # no package: a directory this process sees already
        if deploy.code_sha256:
            code = self._code.get(deploy.code_sha256)
            if code is None:
                code = self._code[deploy.code_sha256] = self._unpack(deploy)
        # Concurrency is the front-end's: here a function has as many workers as slots.
        config = msgspec.structs.replace(config, code=code, reserved_concurrency=None,
                                         provisioned=0)
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
            if pool is not None:
                pool.max_workers = resize.workers
        self._stop_idle(resize.function, resize.workers)

    def _stop_idle(self, function: str, keep: int) -> None:
        """Stop idle workers of ``function`` until at most ``keep`` workers are left."""
        with self.dispatcher.lock:
            pool = self.pools.get(function)
            if pool is None:
                return
            workers = self.supervisor.workers
            for worker in self.dispatcher.core.idle_workers(pool.name):
                if len(pool.workers) <= keep:
                    break
                workers.stop(workers.records[worker])

    def _recycle(self, recycle: protocol.Recycle) -> None:
        """Stop the function's idle workers and wait until they have ended (the next
        invocation, which the front-end sends after the answer, forks at once)."""
        with self.dispatcher.lock:
            pool = self.pools.get(recycle.function)
            if pool is not None:
                self.supervisor.workers.recycle(pool, recycle.wait_s)
        self._answer(protocol.Recycled(recycle.function))

    def _undeploy(self, function: str) -> None:
        with self.dispatcher.lock:
            pool = self.pools.pop(function, None)
            if pool is not None:
                self.supervisor.remove(pool)

    # -- what the engine answers -------------------------------------------------------------

    def _done(self, invocation: Invocation) -> None:
        """An invocation ended (dispatcher lock held, any thread)."""
        self._answered.add(invocation.pool)
        self._answer(protocol.Done(
            invocation.source, invocation.request_id, invocation.outcome,
            invocation.error_type, invocation.payload, invocation.duration_ns,
            invocation.max_rss_kb, invocation.init_ns if invocation.cold else 0,
            invocation.cold, invocation.log, invocation.log_stream))

    def _answer(self, record: protocol.Done | protocol.Recycled) -> None:
        """Put ``record`` in the outbox, waking the owner's loop unless this is it."""
        self.outbox.append(record)
        if threading.get_ident() != self.loop_thread:
            os.eventfd_write(self.outbox_fd, 1)

    def answers_can_wait(self) -> bool:
        """Whether the answers not yet sent may wait for more (owner's loop): each of
        their functions still has half a pipeline of invocations waiting behind every one
        of its workers here, so the front-end need not send more yet.  A burst of answers
        then costs one frame, and one wake-up on each side, instead of one per answer."""
        low = protocol.PIPELINE_DEPTH // 2
        with self.dispatcher.lock:
            return all(len(pool.queue) >= low * max(1, len(pool.workers))
                       for pool in self._answered)

    def answers_sent(self) -> None:
        """The owner's loop sent every answer in the outbox."""
        with self.dispatcher.lock:
            self._answered.clear()

    def idle_behind(self) -> bool:
        """Whether invocations run here and none waits for a worker: the owner's loop
        may then spin for the next reply (it would be woken for it a few tens of µs
        later); while some wait, the workers need the CPU more."""
        return bool(self.dispatcher.core.in_flight) and not any(
            pool.queue for pool in self.pools.values())

    def collect(self, woken: bool) -> None:
        """Take the workers' replies (the owner's loop; ``woken``: on ``dispatcher.fd``).
        A worker writes that fd only while the loop sleeps (the dispatcher's doorbell
        rung, ``wait``): the loop takes what waits in the lanes on every turn."""
        if woken:
            self.dispatcher.clear_wake_up()
        with self.dispatcher.lock:
            self.dispatcher.collect()

    def wait(self, poll: Callable[[float | None], list[tuple[Any, int]]],
             timeout: float | None) -> list[tuple[Any, int]]:
        """The owner's loop's wait, ``poll(timeout)``, which the workers' replies end
        meanwhile; ``poll(0)`` when a reply was published before the doorbell rang (its
        worker then woke nobody)."""
        bell = self.dispatcher.bell
        bell.raise_()
        try:
            return poll(0 if self.dispatcher.replies_waiting() else timeout)
        finally:
            bell.lower()

    def clear_outbox_fd(self) -> None:
        try:  # noqa: SIM105 - on every wake-up: suppress() would add a context manager
            os.eventfd_read(self.outbox_fd)
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Stop every template and worker, and remove the node's cgroups and files."""
        self.supervisor.stop()
        self.dispatcher.close()
        os.close(self.outbox_fd)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _unmetered(invocation: Invocation) -> None:
    """The front-end meters and logs every invocation; the node does not."""
