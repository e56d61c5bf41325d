"""What the pool asks of the front-end's end of the workers' links (the dispatcher).

The dispatcher routes invocations and reads replies; the pool makes and ends workers. Each
needs the other: the dispatcher asks the pool for workers (``Workers``), the pool asks the
dispatcher for the links of the workers it forks and to complete the invocations it ends
(a timeout, a crash, an Init failure).  This protocol is the second half, so that the pool
does not import the dispatcher."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

    from .._core import Dispatcher as CoreDispatcher
    from .._core import Doorbell
    from .records import FunctionPool, Invocation


class RemoteLink(Protocol):
    """A worker's link that is not shared memory (a remote slot's): it only sends."""

    def send(self, message: bytes) -> None: ...


class RemoteAnswers(Protocol):
    """Answers that arrive on sockets, not in lanes (a Ray cluster's nodes'), which an
    asyncio loop awaiting invocations may read itself while it does (``cluster.relay``)."""

    def lend(self, loop: asyncio.AbstractEventLoop) -> None: ...
    def take_back(self, loop: asyncio.AbstractEventLoop) -> None: ...
    def leave_thread(self) -> None: ...


class Hop(Protocol):
    lock: threading.Lock  # the one lock of the front-end's bookkeeping
    core: CoreDispatcher  # idle stacks, requests in flight, deadlines
    fd: int  # the eventfd every worker writes after a reply
    bell: Doorbell  # raised while someone sleeps on ``fd``
    unattended: int  # invocations in flight that no caller waits for (Event)
    replies_read_elsewhere: bool  # a loop of the owner reads every reply (no need to)
    remote_answers: RemoteAnswers | None

    def open_link(self, worker: bytes) -> tuple[int, int, int, int, int]: ...
    def add_link(self, worker: bytes, link: RemoteLink) -> None: ...
    def close_link(self, worker: bytes) -> None: ...
    def delivered(self, worker: bytes, request_id: str | None = None) -> bool: ...
    def take_back(self, worker: bytes) -> None: ...
    def send_stop(self, worker: bytes) -> None: ...
    def collect(self) -> None: ...
    def replies_waiting(self) -> bool: ...
    def clear_wake_up(self) -> None: ...
    def complete(self, invocation: Invocation) -> None: ...
    def resend(self, invocation: Invocation) -> None: ...
    def dispatch_queued(self, pool: FunctionPool) -> None: ...
