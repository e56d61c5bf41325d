"""The front-end's records of functions' pools and of their workers."""

from __future__ import annotations

import socket
import subprocess
from collections import deque
from typing import TYPE_CHECKING

from .._core import Meter
from ..logs import log_stream_name

if TYPE_CHECKING:
    from ..config import FunctionConfig
    from ..dispatch import Invocation
    from .cgroups import Group


class WorkerRecord:
    """One worker process as the front-end sees it.

    ``state`` moves starting -> idle -> (stopping | killed) -> gone; "idle" means ready,
    busy or not (the dispatcher's core knows which: ``Supervisor.is_idle``).  ``cold``
    stays True until the worker's first invocation ends: that one reports Init Duration.
    """

    __slots__ = ("id", "pool", "pid", "state", "cold", "init_ns", "log_path", "log_offset",
                 "last_used_ns", "provisioned", "group", "log_stream", "generation")

    def __init__(self, worker_id: bytes, pool: FunctionPool, log_path: str,
                 provisioned: bool) -> None:
        self.id = worker_id
        self.pool = pool
        self.pid: int | None = None
        self.state = "starting"
        self.cold = True
        self.init_ns = 0
        self.log_path = log_path
        self.log_offset = 0
        self.last_used_ns = 0
        self.provisioned = provisioned
        self.group: Group | None = None  # its cgroup(s), when the machine lets us make them
        self.log_stream = log_stream_name()
        self.generation = pool.generation  # the configuration it was forked with


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
        self.name = config.name
        self.meter = meter
        self.max_workers = max_workers
        self.state = "booting"
        self.template: subprocess.Popen[bytes] | None = None
        self.control: socket.socket | None = None  # our end of the template's control socket
        self.init_ns = 0
        self.init_deadline_ns = 0
        self.init_timed_out = False
        self.init_error: dict | None = None
        self.workers: dict[bytes, WorkerRecord] = {}
        self.starting = 0
        self.active = 0  # invocations admitted and not complete (its concurrency, as Lambda's)
        self.round_trip_ns = 0  # recent send-to-reply time, averaged (0: none yet)
        self.boot_failures = 0
        self.queue: deque[Invocation] = deque()
        self.init_stream = log_stream_name()  # where invocations failed by Init are logged
        self.deleted = False
        self.generation = 0
        self.retired: dict[int, socket.socket] = {}
