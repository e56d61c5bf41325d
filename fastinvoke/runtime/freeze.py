"""Between invocations nothing of the function runs, as Lambda freezes an execution
environment once its handler has answered.

A Python worker cannot stop its own threads with a signal (a signal stops the whole
process); it keeps them from running instead by holding the GIL while it waits for the
next request (``Link.recv(hold_gil=True)``), which stalls every Python thread the
function left behind.  The processes it left running, with their own descendants, get
SIGSTOP after the reply and SIGCONT when the next request comes.  When nothing was left
running, which is the usual case, this costs one system call per invocation.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal

from .._core import has_children


def threads_left() -> bool:
    """Whether a thread the function started (``threading``, ``_thread``) is alive."""
    return _thread._count() > 0


def stop_children() -> list[int]:
    """SIGSTOP every process below this one; return their pids, parents first."""
    if not has_children():
        return []
    stopped: list[int] = []
    parents = [os.getpid()]
    while parents:
        for child in children(parents.pop()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGSTOP)
                stopped.append(child)
                parents.append(child)
    return stopped


def resume(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (a child belongs to the thread that forked
    it in /proc's view); none once it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found += [int(child) for child in listed.read().split()]
        except OSError:
            continue
    return found
