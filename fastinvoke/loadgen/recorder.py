"""What a load run saw: one entry per completed request, summarised in HDR histograms.

The hot path only appends three integers to flat arrays (tens of nanoseconds); the HDR
histograms are built after the clock stops, so recording never slows the load.  A
request's latency runs from its start, which the schedule sets: the send time in a
closed loop, the intended send time in an open loop (see ``schedule``).
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

# Latencies in microseconds, 1 µs to 1 hour, 3 significant digits (0.1 % resolution).
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
OK = 0
# An error's kind: a function error is a result (HTTP 200, X-Amz-Function-Error); a
# service error is Lambda answering with an HTTP error; a throttle is the 429 among them.
FUNCTION, SERVICE, THROTTLE = "function", "service", "throttle"


@dataclass(frozen=True)
class Failure:
    """One kind of failed request: ``kind`` (FUNCTION, SERVICE or THROTTLE) and a label,
    e.g. ("function", "Unhandled") or ("throttle", "ConcurrentInvocationLimitExceeded")."""

    kind: str
    label: str


class Recorder:
    """Append-only record of a run's requests, timed against ``started_ns``."""

    def __init__(self) -> None:
        self.started_ns = time.perf_counter_ns()
        self.stopped_ns: int | None = None
        self.starts = array("q")  # ns since started_ns
        self.ends = array("q")
        self.codes = array("H")  # OK, or 1 + an index into ``failures``
        self.failures: list[Failure] = []
        self.error_count = 0  # for a live display; ``summary`` recounts from the codes
        self._codes: dict[Failure, int] = {}

    def __len__(self) -> int:
        return len(self.codes)

    def record(self, start_ns: int, end_ns: int, failure: Failure | None) -> None:
        """A completed request (absolute ``perf_counter_ns`` times)."""
        self.starts.append(start_ns - self.started_ns)
        self.ends.append(end_ns - self.started_ns)
        if failure is None:
            self.codes.append(OK)
        else:
            self.error_count += 1
            self.codes.append(self._code(failure))

    def record_batch(self, start_ns: int, end_ns: int, failures: list[Failure | None]) -> None:
        """The invocations of one batch (``invoke_many``), each a request of its own, all
        timed from the batch's start to its end."""
        count = len(failures)
        self.starts.extend(array("q", (start_ns - self.started_ns,)) * count)
        self.ends.extend(array("q", (end_ns - self.started_ns,)) * count)
        code = self._code
        self.codes.extend([OK if failure is None else code(failure) for failure in failures])
        self.error_count += count - failures.count(None)

    def stop(self) -> None:
        self.stopped_ns = time.perf_counter_ns()

    def _code(self, failure: Failure) -> int:
        code = self._codes.get(failure)
        if code is None:
            self.failures.append(failure)
            code = self._codes[failure] = len(self.failures)
        return code

    @property
    def elapsed_s(self) -> float:
        stopped = self.stopped_ns if self.stopped_ns is not None else time.perf_counter_ns()
        return (stopped - self.started_ns) / 1e9

    def summary(self) -> Summary:
        histogram = _histogram(range(len(self)), self.starts, self.ends)
        counts = Counter(self.codes)
        by_kind: dict[str, dict[str, int]] = {FUNCTION: {}, SERVICE: {}, THROTTLE: {}}
        for code, failure in enumerate(self.failures, start=1):
            by_kind[failure.kind][failure.label] = counts[code]
        requests = len(self)
        elapsed = self.elapsed_s
        return Summary(
            requests=requests,
            errors=requests - counts[OK],
            throughput=requests / elapsed if elapsed > 0 else 0.0,
            elapsed_s=elapsed,
            latency_us=latency_stats(histogram),
            function_errors=by_kind[FUNCTION],
            service_errors=by_kind[SERVICE],
            throttles=by_kind[THROTTLE],
        )

    def timeline(self, width_s: float) -> list[Interval]:
        """The run cut into intervals of ``width_s`` by completion time, each with its
        own histogram: how latency and throughput moved during the run."""
        width_ns = max(1, int(width_s * 1e9))
        buckets: dict[int, list[int]] = {}
        for i, end in enumerate(self.ends):
            buckets.setdefault(end // width_ns, []).append(i)
        intervals = []
        for slot in range(max(buckets, default=-1) + 1):
            members = buckets.get(slot, [])
            errors = sum(1 for i in members if self.codes[i] != OK)
            histogram = _histogram(members, self.starts, self.ends)
            intervals.append(Interval((slot + 1) * width_s, len(members) / width_s,
                                      errors / width_s, latency_stats(histogram)))
        return intervals


@dataclass(frozen=True)
class Summary:
    requests: int
    errors: int  # function errors, service errors and throttles together
    throughput: float  # completed requests per second
    elapsed_s: float
    latency_us: dict[str, float]  # p50 p90 p99 p999 max min mean
    function_errors: dict[str, int] = field(default_factory=dict)
    service_errors: dict[str, int] = field(default_factory=dict)
    throttles: dict[str, int] = field(default_factory=dict)  # 429s, by Reason


@dataclass(frozen=True)
class Interval:
    end_s: float  # since the run started
    throughput: float  # completed requests per second in this interval
    error_rate: float  # failed requests per second
    latency_us: dict[str, float]


def _histogram(indices: range | list[int], starts: array, ends: array) -> HdrHistogram:
    histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
    record = histogram.record_value
    for i in indices:
        # Clamped into the trackable range: a sub-microsecond answer counts as 1 µs.
        record(min(HIGHEST_US, max(LOWEST_US, (ends[i] - starts[i]) // 1000)))
    return histogram


def latency_stats(histogram: HdrHistogram) -> dict[str, float]:
    """p50, p90, p99, p99.9, max, min and mean in µs (zeros when nothing was recorded)."""
    if histogram.get_total_count() == 0:
        return dict.fromkeys([*PERCENTILES, "max", "min", "mean"], 0.0)
    stats = {name: float(histogram.get_value_at_percentile(q)) for name, q in PERCENTILES.items()}
    stats["max"] = float(histogram.get_max_value())
    stats["min"] = float(histogram.get_min_value())
    stats["mean"] = round(histogram.get_mean_value(), 1)
    return stats
