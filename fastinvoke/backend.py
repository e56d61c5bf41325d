"""Where an Invoker's workers run: this machine (``pool.supervisor.Supervisor``) or a Ray
cluster's nodes (``cluster.backend.ClusterSupervisor``).  The functions, the dispatcher and
the Event queue see either through this interface."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .cluster.slots import Slots
    from .config import FunctionConfig
    from .pool.alarm import Alarm
    from .pool.lifecycle import Workers
    from .pool.records import FunctionPool


class Backend(Protocol):
    lock: threading.Lock  # the dispatcher's
    alarm: Alarm  # wakes the backend's thread (a deadline earlier than it planned for)
    workers: Workers | Slots  # what the dispatcher asks for workers

    def check(self, config: FunctionConfig) -> None:
        """Refuse (raise) a function this backend could never run a worker of."""

    def add(self, pool: FunctionPool) -> None: ...
    def remove(self, pool: FunctionPool) -> None: ...
    def renew(self, pool: FunctionPool) -> None: ...
    def placement(self, pool: FunctionPool) -> dict[str, int]:
        """Where ``pool``'s workers are: a place (Ray node id, or "local") -> how many."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
