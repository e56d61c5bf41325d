# Exact per-function counters.  Everything is an integer: durations in nanoseconds,
# billed time in milliseconds, memory-time in MB·ms.  Sums that can outgrow 64 bits
# (MB·ms after billions of calls) are Python integers, so nothing ever wraps or drifts.

cdef long long _NS_PER_MS = 1_000_000


cpdef long long billed_ms(long long duration_ns, long long granularity_ms):
    """Duration rounded up to the billing granularity (at least one unit), in ms."""
    cdef long long unit = granularity_ms * _NS_PER_MS
    cdef long long units = (duration_ns + unit - 1) // unit
    if units < 1:
        units = 1
    return units * granularity_ms


cdef class Meter:
    """The counters of one function; ``record`` is called once per ended invocation.

    ``granularity_ms`` and ``bill_init`` are the billing preset: ``classic`` is 100 ms
    with Init not billed, ``current`` is 1 ms with Init billed on a cold start.
    """

    cdef readonly long long granularity_ms
    cdef readonly bint bill_init
    cdef readonly long long invocations, errors, throttles, timeouts, oom_kills, cold_starts
    cdef readonly object duration_ns, init_ns, billed_ms_total, mb_ms

    def __cinit__(self, long long granularity_ms=100, bint bill_init=False):
        self.granularity_ms = granularity_ms
        self.bill_init = bill_init
        self.duration_ns = 0
        self.init_ns = 0
        self.billed_ms_total = 0
        self.mb_ms = 0

    cpdef long long record(self, long long duration_ns, long long init_ns, long long memory_mb,
                           int outcome, bint cold):
        """Count one invocation; return its billed duration in ms.

        ``outcome``: 0 success, 1 function error, 2 timeout, 3 out of memory, 4 other crash.
        ``init_ns`` is the Init duration on a cold start (0 otherwise).
        """
        cdef long long charged = duration_ns
        cdef long long billed
        if cold and self.bill_init:
            charged += init_ns
        billed = billed_ms(charged, self.granularity_ms)
        self.invocations += 1
        if outcome != 0:
            self.errors += 1
        if outcome == 2:
            self.timeouts += 1
        elif outcome == 3:
            self.oom_kills += 1
        if cold:
            self.cold_starts += 1
            self.init_ns += init_ns
        self.duration_ns += duration_ns
        self.billed_ms_total += billed
        self.mb_ms += memory_mb * billed
        return billed

    cpdef throttled(self):
        """Count a throttled request (not an invocation: it is not billed)."""
        self.throttles += 1

    def snapshot(self):
        """The counters as a dict of integers."""
        return {
            "invocations": self.invocations,
            "errors": self.errors,
            "throttles": self.throttles,
            "timeouts": self.timeouts,
            "oom_kills": self.oom_kills,
            "cold_starts": self.cold_starts,
            "duration_ns": self.duration_ns,
            "init_ns": self.init_ns,
            "billed_ms": self.billed_ms_total,
            "mb_ms": self.mb_ms,
        }
