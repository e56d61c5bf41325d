"""Allocates event["mb"] MiB and touches every page; with event["spin_s"], busy-loops that
long instead and returns the CPU time it got per second of wall time."""

import resource
import time


def handler(event, context):
    if "spin_s" in event:
        start, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
        while time.monotonic() - start < event["spin_s"]:
            pass
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        used = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        return used / (time.monotonic() - start)
    block = bytearray(event["mb"] << 20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    return len(block) >> 20
