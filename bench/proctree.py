"""CPU time of a whole process tree: the caller and every process below it.

The tree comes from ``/proc/*/stat`` (each process's parent pid): fastinvoke's templates
are children of the caller and its workers children of a template, a raw server or a
pool's workers children of the caller.  A process's CPU time is read from its CPU-time
clock (``clock_gettime`` on the clock of that pid): the sum over all its threads, live and
ended, that ``/proc/PID/stat`` reports as utime + stime, but in nanoseconds; stat's
fields are in clock ticks (10 ms here), coarser than a quick run's whole timed loop.

A measurement is two ``Sample``s of the same tree; ``used`` refuses to compare trees
whose processes changed in between (a fork or an exit in the window would hide or
misplace CPU time), so a figure always covers the same processes from start to end.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


def _parent(pid: int) -> int | None:
    """The parent pid in ``/proc/PID/stat`` (after the command name, which may hold
    spaces and parentheses), or None for a process that has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return None
    return int(fields[1])


def depths(root: int | None = None) -> dict[int, int]:
    """``root`` (default: this process) and its descendants, each with its depth below
    ``root`` (0: root; 1: its children; ...)."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (parent := _parent(int(entry))) is not None:
            children.setdefault(parent, []).append(int(entry))
    found, level, depth = {}, [root], 0
    while level:
        found.update((pid, depth) for pid in level)
        level = [child for pid in level for child in children.get(pid, ())]
        depth += 1
    return found


def cpu_ns(pid: int) -> int:
    """CPU time of the process ``pid``, all its threads, in ns (its CPU-time clock:
    MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED), as glibc's clock_getcpuclockid makes it)."""
    return time.clock_gettime_ns((~pid << 3) | 2)


@dataclass(frozen=True)
class Sample:
    cpu: dict[int, int]  # pid -> CPU ns
    depth: dict[int, int]  # pid -> depth below the root


def sample(tree: dict[int, int] | None = None) -> Sample:
    """Every process's CPU time, for ``tree`` (``depths()``'s answer; default: found now).
    Pass the tree found beforehand to keep the /proc scan out of a timed window."""
    tree = depths() if tree is None else tree
    try:
        return Sample({pid: cpu_ns(pid) for pid in tree}, tree)
    except OSError as exc:  # EINVAL: a process of the tree has ended
        raise AssertionError(f"a process of the tree ended while sampled: {exc}") from None


def used(before: Sample, after: Sample) -> dict[int, int]:
    """CPU ns each process of the tree used between the samples; the tree must be the same
    (scanned again now), or the figure would miss a process or count one for part of it."""
    now = depths()
    if not before.cpu.keys() == after.cpu.keys() == now.keys():
        born = sorted(now.keys() - before.cpu.keys())
        gone = sorted(before.cpu.keys() - now.keys())
        raise AssertionError(f"the process tree changed during the window: new {born}, "
                             f"ended {gone}")
    return {pid: after.cpu[pid] - before.cpu[pid] for pid in before.cpu}
