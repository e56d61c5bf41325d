"""The front-end's records: a function's pool, its workers, and its invocations."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core import Meter
from ..logs import log_stream_name
from ..requests import new_request_id

if TYPE_CHECKING:
    from ..config import FunctionConfig
    from ..errors import ServiceError
    from ..logs import InvocationLog
    from ..wire import Chunk
    from .cgroups import Group


class WorkerRecord:
    """One worker process as the front-end sees it.

    ``state`` moves starting -> idle -> (stopping | killed) -> gone; "idle" means ready,
    busy or not (the dispatcher's core knows which: ``Workers.is_idle``).  ``cold``
    stays True until the worker's first invocation ends: that one reports Init Duration.
    ``output_fd`` is the read end of its output pipe, ``output`` what was drained from it
    and not yet taken (both under ``output_lock``: see ``output.Outputs``).
    """

    __slots__ = ("id", "pool", "pid", "state", "cold", "init_ns", "output_fd", "output",
                 "output_lock", "last_used_ns", "provisioned", "group", "log_stream",
                 "generation", "mark_owed")

    def __init__(self, worker_id: bytes, pool: FunctionPool, provisioned: bool) -> None:
        self.id = worker_id
        self.pool = pool
        self.pid: int | None = None
        self.state = "starting"
        self.cold = True
        self.init_ns = 0
        self.output_fd = -1
        self.output: list[bytes] = []
        self.output_lock = threading.Lock()
        self.last_used_ns = 0
        self.provisioned = provisioned
        self.group: Group | None = None  # its cgroup(s), when the machine lets us make them
        self.log_stream = log_stream_name(pool.config.version)
        self.generation = pool.generation  # the configuration it was forked with
        self.mark_owed = False  # its output has a mark to come that no one's lines precede


class FunctionPool:
    """Everything the front-end keeps for one function.

    ``state``: booting (template running Init) -> ready | failed (Init raised; the next
    invocation retries it, as Lambda does) | dead (the template itself ended).  ``queue``
    holds invocations waiting for a worker; ``starting`` counts workers forked but not yet
    ready, so the pool never forks more than the queue needs.

    ``generation`` counts configuration changes: workers of an older generation finish
    what they run and are stopped; ``retired`` maps such a generation to the control socket
    of its template, closed (ending the template) once its last worker is gone.
    """

    def __init__(self, config: FunctionConfig, meter: Meter, max_workers: int) -> None:
        self.config = config
        self.name = config.qualified_name  # the key of the pools of all its versions
        self.id_name = self.name.replace(":", "-")  # in worker ids: no ':' (cgroup names)
        # Whose concurrency an invocation counts against: the function's ($LATEST) pool,
        # for every version (``Functions.add_version`` points it there).
        self.head = self
        self.meter = meter
        self.max_workers = max_workers
        self.state = "booting"
        self.template: subprocess.Popen[bytes] | None = None
        self.control: socket.socket | None = None  # our end of the template's control socket
        self.init_ns = 0
        self.init_deadline_ns = 0
        self.init_timed_out = False
        self.init_error: dict | None = None
        self.inits = 0  # Inits ended (ready or failed): a watcher knows a new one ended
        self.renew_at_ns = 0  # when its environments' credentials are renewed (0: never)
        self.init_output_at = 0  # where its template's output starts in its Init log
        self.init_output = b""  # what its last Init printed
        self.workers: dict[bytes, WorkerRecord] = {}
        self.starting = 0
        self.active = 0  # invocations admitted and not complete (its concurrency, as Lambda's)
        self.peak_rss_kb = 0  # the most memory one of its invocations used (Max Memory Used)
        self.round_trip_ns = 0  # recent send-to-reply time, averaged (0: none yet)
        self.boot_failures = 0
        self.queue: deque[Invocation] = deque()
        # Where invocations that Init failed are logged.
        self.init_stream = log_stream_name(config.version)
        self.deleted = False
        self.generation = 0
        self.retired: dict[int, socket.socket] = {}


class Invocation:
    """One invocation, from submission to its result.

    Completion sets ``done`` under the dispatcher's lock, after the result fields; the
    waiter is then woken exactly once, in the way it waits (``sem``, ``future`` or
    ``callback``).
    """

    __slots__ = (
        "request_id", "pool", "event", "timeout_ns", "invoked_arn", "client_context",
        "identity", "trace_id", "done", "payload", "error_type", "outcome", "log",
        "duration_ns", "max_rss_kb", "init_ns", "cold", "billed_ms", "log_entry",
        "sem", "waiting", "future", "loop", "loop_thread", "callback", "started_ns", "ahead",
        "log_stream", "source", "batch", "service_error", "on_chunk",
    )

    def __init__(self, request_id: str, pool: FunctionPool, event: bytes,
                 invoked_arn: str, client_context: str | None = None) -> None:
        self.request_id = request_id
        self.pool = pool
        self.event = event
        self.timeout_ns = pool.config.timeout_s * 1_000_000_000
        self.invoked_arn = invoked_arn
        self.client_context = client_context
        self.identity: str | None = None
        self.trace_id: str | None = None
        self.done = False
        self.payload = b""
        self.error_type: str | None = None
        self.outcome = 0
        self.log = b""
        self.duration_ns = 0
        self.max_rss_kb = 0
        self.init_ns = 0
        self.cold = False
        self.billed_ms = 0
        self.log_entry: InvocationLog | None = None
        self.sem: threading.Lock | None = None
        self.waiting = False
        self.future: asyncio.Future[Invocation] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = 0
        self.callback: Callable[[Invocation], None] | None = None
        self.started_ns = 0
        self.ahead = False  # sent to a busy worker ahead of need (``pool.ahead``)
        self.log_stream = pool.init_stream
        self.source: Any = None  # what the submitter keeps with it (the queued Event)
        self.batch: Batch | None = None
        # What Invoke raises instead of answering (its worker's node was lost).
        self.service_error: ServiceError | None = None
        # Takes the parts of a streamed response as they come (dispatcher lock held).
        self.on_chunk: Callable[[Chunk], None] | None = None

    def awaitable(self) -> Invocation:
        """This invocation, to be awaited on the running loop (from its thread)."""
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.loop_thread = threading.get_ident()
        self.future = loop.create_future()
        return self


class Batch:
    """Invocations of one function streamed through its workers (``invoke_many``).

    At most ``width`` run at once; as one ends, the next is sent in its place, inheriting
    its concurrency (so it needs no admission of its own, and nobody can take the slot in
    between).  ``sentinel`` completes when the last one has: the caller waits for it as for
    a single invocation, so one wake-up ends a whole batch, not one per invocation.
    """

    __slots__ = ("invocations", "pending", "remaining", "sentinel", "width")

    def __init__(self, invocations: list[Invocation], sentinel: Invocation) -> None:
        self.width = 1  # set when it starts
        self.invocations = invocations
        self.pending = deque(invocations)
        self.remaining = len(invocations)
        self.sentinel = sentinel
        sentinel.batch = self  # never sent: it only ends when the batch has
        for invocation in invocations:
            invocation.batch = self

    @classmethod
    def of(cls, pool: FunctionPool, bodies: list[bytes], arn: str) -> Batch:
        """A batch of one invocation of ``pool`` per event body."""
        invocations = [Invocation(new_request_id(), pool, body, arn) for body in bodies]
        return cls(invocations, Invocation("", pool, b"", arn))
