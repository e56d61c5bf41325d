# Exact per-function counters.  Everything is an integer: durations in nanoseconds,
# billed time in milliseconds, memory-time in MB·ms.  Sums that can outgrow 64 bits
# (MB·ms after billions of calls) are Python integers, so nothing ever wraps or drifts.
#
# Durations also go into a log-linear histogram (HDR-style): 64 sub-buckets per power of
# two of microseconds, so a percentile read from it is within 1/64 (1.6 %) of the truth,
# from 1 us up to 2^31 us (35 minutes, beyond Lambda's 15-minute limit).
from libc.string cimport memset

cdef long long _NS_PER_MS = 1_000_000
DEF _SUB_BITS = 6
DEF _SUB = 64                     # 1 << _SUB_BITS
DEF _MAJORS = 26                  # octaves above the first _SUB microseconds
DEF _BUCKETS = _SUB * (_MAJORS + 1)


cpdef long long billed_ms(long long duration_ns, long long granularity_ms):
    """Duration rounded up to the billing granularity (at least one unit), in ms."""
    cdef long long unit = granularity_ms * _NS_PER_MS
    cdef long long units = (duration_ns + unit - 1) // unit
    if units < 1:
        units = 1
    return units * granularity_ms


cdef inline int _bucket(long long us) noexcept nogil:
    cdef int major = 0
    if us < _SUB:
        return <int>(us if us > 0 else 0)
    while (us >> major) >= 2 * _SUB:
        major += 1
    if major >= _MAJORS:
        return _BUCKETS - 1
    return (major + 1) * _SUB + <int>((us >> major) - _SUB)


cdef inline long long _bucket_top(int index) noexcept nogil:
    """The largest microsecond value that falls in bucket ``index``."""
    cdef int major = index // _SUB - 1
    if major < 0:
        return index
    return ((index % _SUB + _SUB + 1) << major) - 1


cdef class Meter:
    """The counters of one function; ``record`` is called once per ended invocation.

    ``granularity_ms`` and ``bill_init`` are the billing preset: ``classic`` is 100 ms
    with Init not billed, ``current`` is 1 ms with Init billed on a cold start.
    ``concurrent`` counts invocations running on a worker now (``began`` to ``record``),
    ``peak_concurrent`` the most there ever were at once.
    """

    cdef readonly long long granularity_ms
    cdef readonly bint bill_init
    cdef readonly long long invocations, errors, throttles, timeouts, oom_kills, cold_starts
    # Invocations a provisioned worker served (Lambda's ProvisionedConcurrencyInvocations).
    cdef readonly long long provisioned_invocations
    cdef readonly long long concurrent, peak_concurrent
    cdef readonly object duration_ns, init_ns, billed_ms_total, mb_ms
    cdef long long _histogram[_BUCKETS]

    def __cinit__(self, long long granularity_ms=100, bint bill_init=False):
        self.granularity_ms = granularity_ms
        self.bill_init = bill_init
        self.duration_ns = 0
        self.init_ns = 0
        self.billed_ms_total = 0
        self.mb_ms = 0
        memset(self._histogram, 0, sizeof(self._histogram))

    cpdef began(self):
        """An invocation started running on a worker."""
        self.concurrent += 1
        if self.concurrent > self.peak_concurrent:
            self.peak_concurrent = self.concurrent

    cpdef not_started(self):
        """An invocation counted by ``began`` never reached its worker (it ended first)."""
        self.concurrent -= 1

    cpdef long long record(self, long long duration_ns, long long init_ns, long long memory_mb,
                           int outcome, bint cold, bint ran=True):
        """Count one invocation; return its billed duration in ms.

        ``outcome``: 0 success, 1 function error, 2 timeout, 3 out of memory, 4 other crash.
        ``init_ns`` is the Init duration on a cold start (0 otherwise); ``ran`` is False
        for an invocation that never reached a worker (its Init failed first).
        """
        cdef long long charged = duration_ns
        cdef long long billed
        if cold and self.bill_init:
            charged += init_ns
        billed = billed_ms(charged, self.granularity_ms)
        self.invocations += 1
        if ran:
            self.concurrent -= 1
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
        self._histogram[_bucket(duration_ns // 1000)] += 1
        return billed

    cpdef served_provisioned(self):
        """Count an invocation (recorded too) that a provisioned worker ran."""
        self.provisioned_invocations += 1

    cpdef throttled(self):
        """Count a throttled request (not an invocation: it is not billed)."""
        self.throttles += 1

    cpdef long long percentile_us(self, double q):
        """The duration (us, within 1.6 %) that ``q`` (0..1) of invocations did not exceed;
        0 before any invocation."""
        cdef long long total = 0, seen = 0, wanted
        cdef int i
        for i in range(_BUCKETS):
            total += self._histogram[i]
        if total == 0:
            return 0
        wanted = <long long>(q * total + 0.999999999)
        if wanted < 1:
            wanted = 1
        for i in range(_BUCKETS):
            seen += self._histogram[i]
            if seen >= wanted:
                return _bucket_top(i)
        return _bucket_top(_BUCKETS - 1)

    def restore(self, dict counters):
        """Continue from ``counters`` (a ``snapshot()`` of an earlier run of this function);
        durations recorded then are not in the histogram."""
        self.invocations = counters.get("invocations", 0)
        self.errors = counters.get("errors", 0)
        self.throttles = counters.get("throttles", 0)
        self.timeouts = counters.get("timeouts", 0)
        self.oom_kills = counters.get("oom_kills", 0)
        self.cold_starts = counters.get("cold_starts", 0)
        self.provisioned_invocations = counters.get("provisioned_invocations", 0)
        self.peak_concurrent = counters.get("peak_concurrent", 0)
        self.duration_ns = counters.get("duration_ns", 0)
        self.init_ns = counters.get("init_ns", 0)
        self.billed_ms_total = counters.get("billed_ms", 0)
        self.mb_ms = counters.get("mb_ms", 0)

    def snapshot(self):
        """The counters as a dict of integers."""
        return {
            "invocations": self.invocations,
            "errors": self.errors,
            "throttles": self.throttles,
            "timeouts": self.timeouts,
            "oom_kills": self.oom_kills,
            "cold_starts": self.cold_starts,
            "provisioned_invocations": self.provisioned_invocations,
            "concurrent": self.concurrent,
            "peak_concurrent": self.peak_concurrent,
            "duration_ns": self.duration_ns,
            "init_ns": self.init_ns,
            "billed_ms": self.billed_ms_total,
            "mb_ms": self.mb_ms,
            "p50_us": self.percentile_us(0.50),
            "p90_us": self.percentile_us(0.90),
            "p99_us": self.percentile_us(0.99),
        }
