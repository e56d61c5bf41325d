"""The load generator's statistics, against synthetic latencies with known percentiles."""

from __future__ import annotations

import pytest

from fastinvoke.loadgen.recorder import FUNCTION, SERVICE, THROTTLE, Failure, Recorder

MS = 1_000_000


def recorder_of(latencies_us: list[int], failures: list[Failure | None] | None = None,
                elapsed_s: float = 1.0) -> Recorder:
    """A recorder holding one request per latency, all started at the run's start."""
    recorder = Recorder()
    recorder.started_ns = 0
    for i, latency in enumerate(latencies_us):
        recorder.record(0, latency * 1000, None if failures is None else failures[i])
    recorder.stopped_ns = int(elapsed_s * 1e9)
    return recorder


def within_hdr_precision(measured: float, exact: float) -> bool:
    """3 significant digits: HDR reports a value within 0.1 % of the exact one."""
    return abs(measured - exact) <= exact / 1000 + 1


def test_percentiles_of_a_uniform_distribution() -> None:
    summary = recorder_of(list(range(1, 100_001)), elapsed_s=4.0).summary()
    exact = {"p50": 50_000, "p90": 90_000, "p99": 99_000, "p999": 99_900, "max": 100_000}
    for name, value in exact.items():
        assert within_hdr_precision(summary.latency_us[name], value), (name, summary.latency_us)
    assert summary.latency_us["min"] == 1
    assert within_hdr_precision(summary.latency_us["mean"], 50_000.5)
    assert summary.requests == 100_000
    assert summary.throughput == pytest.approx(25_000)
    assert summary.errors == 0


def test_a_rare_slow_tail_lands_in_the_high_percentiles_only() -> None:
    # 9,880 answers of 100 µs, 100 of 20 ms, 20 of 2 s: p99 is in the second group,
    # p99.9 in the third.
    latencies = [100] * 9_880 + [20_000] * 100 + [2_000_000] * 20
    stats = recorder_of(latencies).summary().latency_us
    assert within_hdr_precision(stats["p50"], 100)
    assert within_hdr_precision(stats["p90"], 100)
    assert within_hdr_precision(stats["p99"], 20_000)
    assert within_hdr_precision(stats["p999"], 2_000_000)
    assert within_hdr_precision(stats["max"], 2_000_000)


def test_errors_are_counted_by_kind_and_type() -> None:
    unhandled = Failure(FUNCTION, "Unhandled")
    reserved = Failure(THROTTLE, "ReservedFunctionConcurrentInvocationLimitExceeded")
    missing = Failure(SERVICE, "ResourceNotFoundException (404)")
    failures = [None] * 5 + [unhandled] * 3 + [reserved] * 2 + [missing]
    recorder = recorder_of([100] * len(failures), failures)
    summary = recorder.summary()
    assert summary.requests == 11
    assert summary.errors == 6 == recorder.error_count
    assert summary.function_errors == {"Unhandled": 3}
    assert summary.throttles == {"ReservedFunctionConcurrentInvocationLimitExceeded": 2}
    assert summary.service_errors == {"ResourceNotFoundException (404)": 1}


def test_latencies_outside_the_trackable_range_are_clamped_not_lost() -> None:
    recorder = Recorder()
    recorder.started_ns = 0
    recorder.record(0, 200, None)  # 0.2 µs: below the 1 µs floor
    recorder.record(0, 2 * 3600 * 10**9, None)  # two hours: above the ceiling
    summary = recorder.summary()
    assert summary.requests == 2
    assert summary.latency_us["min"] == 1
    assert summary.latency_us["max"] >= 3_600_000_000


def test_timeline_cuts_the_run_by_completion_time() -> None:
    recorder = Recorder()
    recorder.started_ns = 0
    # Second 0: 10 answers of 1 ms; second 1: nothing; second 2: 5 of 100 ms, 2 failing.
    for i in range(10):
        recorder.record(i * 10 * MS, i * 10 * MS + MS, None)
    for i in range(5):
        start = 2000 * MS + i * MS
        recorder.record(start, start + 100 * MS, Failure(FUNCTION, "Unhandled") if i < 2 else None)
    recorder.stopped_ns = 3000 * MS
    first, empty, last = recorder.timeline(1.0)
    assert (first.end_s, first.throughput, first.error_rate) == (1.0, 10, 0)
    assert within_hdr_precision(first.latency_us["p99"], 1000)
    assert (empty.throughput, empty.latency_us["max"]) == (0, 0)
    assert (last.end_s, last.throughput, last.error_rate) == (3.0, 5, 2)
    assert within_hdr_precision(last.latency_us["p50"], 100_000)
