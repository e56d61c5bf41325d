"""fastinvoke._core directly: the dispatcher's bookkeeping, the meters, fork and reap."""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections import OrderedDict
from decimal import Decimal

import pytest
from helpers import alive, descendants, kill_all, parent_of, read_line, wait_until

from fastinvoke import _core
from fastinvoke.metering import CRASH, FUNCTION_ERROR, OUT_OF_MEMORY, SUCCESS, TIMEOUT
from fastinvoke.metering import snapshot as metering_snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# -- Dispatcher ----------------------------------------------------------------------------


def test_idle_workers_are_lifo_per_function_and_new_ones_go_below() -> None:
    core = _core.Dispatcher()
    for worker in (b"w1", b"w2", b"w3"):
        core.add_worker(worker, "f")
    core.add_worker(b"g1", "g")
    # A new worker has served nothing: it is the coldest, below every other.
    assert core.idle_workers("f") == [b"w3", b"w2", b"w1"]  # coldest first
    assert [core.pop_idle("f") for _ in range(4)] == [b"w1", b"w2", b"w3", None]
    for request, worker in (("r3", b"w3"), ("r1", b"w1")):
        core.begin(request, worker, 10, request)
        core.finish(request, worker)
    core.add_worker(b"w4", "f")  # a spare forked meanwhile
    assert core.has_idle("f") and not core.has_idle("nobody")
    assert [core.pop_idle("f") for _ in range(3)] == [b"w1", b"w3", b"w4"]
    assert not core.has_idle("f")
    assert core.pop_idle("g") == b"g1"
    assert core.pop_idle("nobody") is None


def test_a_finished_worker_is_the_next_one_used() -> None:
    core = _core.Dispatcher()
    core.add_worker(b"w2", "f")
    core.add_worker(b"w1", "f")
    assert core.pop_idle("f") == b"w2"
    assert core.pop_idle("f") == b"w1"
    core.begin("r2", b"w2", 10, "e2")
    core.begin("r1", b"w1", 10, "e1")
    assert core.finish("r1", b"w1") == "e1"
    assert core.finish("r2", b"w2") == "e2"
    # w2 finished last: it is the warmest and goes first.
    assert core.pop_idle("f") == b"w2"
    assert core.pop_idle("f") == b"w1"


def test_a_request_is_finished_only_by_the_worker_it_was_sent_to() -> None:
    core = _core.Dispatcher()
    core.add_worker(b"w1", "f")
    core.add_worker(b"w2", "f")
    worker = core.pop_idle("f")
    entry = object()
    core.begin("r1", worker, 1_000, entry)
    other = b"w1" if worker == b"w2" else b"w2"
    assert core.finish("r1", other) is None  # a forged or misrouted reply
    assert core.in_flight == 1 and core.busy_worker("r1") == worker
    assert core.finish("unknown", worker) is None
    assert core.finish("r1", worker) is entry
    assert core.in_flight == 0 and core.busy_worker("r1") is None
    assert core.finish("r1", worker) is None  # a duplicate reply
    assert sorted(core.idle_workers("f")) == [b"w1", b"w2"]


def test_hand_over_ends_a_request_and_begins_the_next_on_its_worker() -> None:
    core = _core.Dispatcher()
    core.add_worker(b"w", "f")
    worker = core.pop_idle("f")
    core.begin("r1", worker, 10, "e1")
    assert core.hand_over("r1", b"other", "r2", 20, "e2") is None  # not its worker's reply
    assert core.busy_worker("r2") is None
    assert core.hand_over("r1", worker, "r2", 20, "e2") == "e1"
    # Never idle in between: nothing else can be sent to it.
    assert core.busy_worker("r2") == worker and core.in_flight == 1 and not core.has_idle("f")
    assert core.expired(15) == []  # r1's deadline (10) passed with r1
    assert core.expired(20) == [("r2", worker, "e2")]
    assert core.finish("r2", worker) == "e2" and core.pop_idle("f") == worker


def test_drop_worker_returns_its_request_in_flight() -> None:
    core = _core.Dispatcher()
    for worker in (b"w3", b"w2", b"w1"):
        core.add_worker(worker, "f")
    assert core.pop_idle("f") == b"w3"
    core.begin("r3", b"w3", 1_000, "e3")
    assert core.drop_worker(b"w3") == ("r3", "e3")
    assert core.in_flight == 0
    assert core.finish("r3", b"w3") is None  # the killed worker's late reply matches nothing
    assert core.drop_worker(b"w2") is None  # idle: nothing in flight
    assert core.drop_worker(b"unknown") is None
    assert core.workers("f") == [b"w1"]
    assert core.pop_idle("f") == b"w1"
    assert core.pop_idle("f") is None  # neither dropped worker is handed out again
    assert core.next_deadline() == -1


def test_expired_and_next_deadline_skip_ended_requests() -> None:
    core = _core.Dispatcher()
    for worker in (b"w3", b"w2", b"w1"):
        core.add_worker(worker, "f")
    core.begin("r2", core.pop_idle("f"), 200, "e2")  # w3
    core.begin("r1", core.pop_idle("f"), 100, "e1")  # w2
    core.begin("r3", core.pop_idle("f"), 300, "e3")  # w1
    assert core.next_deadline() == 100
    assert core.expired(99) == []
    assert core.finish("r1", b"w2") == "e1"
    assert core.next_deadline() == 200  # r1 ended: its deadline is skipped
    assert core.expired(250) == [("r2", b"w3", "e2")]  # not r1, which ended
    # An expired request stays in flight (the caller kills its worker), reported once.
    assert core.in_flight == 2 and core.busy_worker("r2") == b"w3"
    assert core.expired(250) == []
    assert core.next_deadline() == 300
    assert core.drop_worker(b"w1") == ("r3", "e3")
    assert core.next_deadline() == -1
    assert core.expired(1 << 62) == []
    assert core.drop_worker(b"w3") == ("r2", "e2")
    assert core.in_flight == 0


def test_expired_includes_a_deadline_equal_to_now() -> None:
    core = _core.Dispatcher()
    core.add_worker(b"w", "f")
    core.begin("r", core.pop_idle("f"), 500, None)
    assert core.expired(500) == [("r", b"w", None)]


# -- billing -------------------------------------------------------------------------------

MS = 1_000_000


@pytest.mark.parametrize(("duration_ns", "granularity_ms", "expected"), [
    (0, 100, 100),  # at least one unit
    (1, 100, 100),
    # The 100 ms era's example (docs/lambda-behaviour.md, "The REPORT line and billing").
    (27_400_000, 100, 100),  # 27.40 -> 100
    (100 * MS, 100, 100),
    (100 * MS + 1, 100, 200),
    (469_400_000, 100, 500),  # 469.40 -> 500
    (0, 1, 1),
    (1, 1, 1),
    (1 * MS, 1, 1),
    (1 * MS + 1, 1, 2),
    (27_550_000, 1, 28),  # 1 ms era: 27.55 -> 28
    (15_740_000, 1, 16),  # 15.74 -> 16
    (900_000 * MS, 1, 900_000),
])
def test_billed_ms_rounds_up_to_the_unit(duration_ns: int, granularity_ms: int,
                                         expected: int) -> None:
    assert _core.billed_ms(duration_ns, granularity_ms) == expected


@pytest.mark.parametrize(("granularity_ms", "bills_init", "memory_mb", "warm_init_ns",
                          "cold_billed", "warm_billed"), [
    pytest.param(100, False, 128, 0, 100, 100, id="classic-never-bills-init"),
    # Not cold: an init figure passed along is neither billed nor counted.
    pytest.param(1, True, 1024, 150 * MS, 160, 10, id="current-bills-init-on-a-cold-start"),
])
def test_a_meter_bills_init_as_its_preset_says(granularity_ms: int, bills_init: bool,
                                               memory_mb: int, warm_init_ns: int,
                                               cold_billed: int, warm_billed: int) -> None:
    meter = _core.Meter(granularity_ms, bills_init)
    assert meter.record(10 * MS, 150 * MS, memory_mb, SUCCESS, True) == cold_billed
    assert meter.record(10 * MS, warm_init_ns, memory_mb, SUCCESS, False) == warm_billed
    figures = meter.snapshot()
    assert figures["cold_starts"] == 1 and figures["init_ns"] == 150 * MS
    billed = cold_billed + warm_billed
    assert figures["billed_ms"] == billed and figures["mb_ms"] == memory_mb * billed
    assert figures["duration_ns"] == 20 * MS


def test_meter_sums_are_exact_after_100000_records() -> None:
    meter = _core.Meter(1, True)
    billed_total = mb_ms = duration_total = init_total = 0
    for i in range(100_000):
        duration = (i * 7_919_993) % 3_000_000_000  # 0 to 3 s, in ns
        init = (i * 104_729) % 500_000_000
        memory = 128 + (i % 80) * 128
        cold = i % 7 == 0
        charged = duration + (init if cold else 0)
        expected = max(1, -(-charged // MS))
        assert meter.record(duration, init, memory, SUCCESS, cold) == expected
        billed_total += expected
        mb_ms += memory * expected
        duration_total += duration
        init_total += init if cold else 0
    figures = meter.snapshot()
    assert figures["invocations"] == 100_000
    assert figures["cold_starts"] == len(range(0, 100_000, 7))
    assert figures["billed_ms"] == billed_total
    assert figures["mb_ms"] == mb_ms
    assert figures["duration_ns"] == duration_total
    assert figures["init_ns"] == init_total
    assert metering_snapshot(meter)["gb_seconds"] == Decimal(mb_ms) / Decimal(1_024_000)


def test_meter_counts_outcomes_and_throttles() -> None:
    meter = _core.Meter(100, False)
    for outcome in (SUCCESS, FUNCTION_ERROR, TIMEOUT, OUT_OF_MEMORY, CRASH, TIMEOUT, SUCCESS):
        meter.record(MS, 0, 128, outcome, False)
    meter.throttled()
    meter.throttled()
    figures = meter.snapshot()
    assert figures["invocations"] == 7  # throttles are not invocations
    assert figures["errors"] == 5
    assert figures["timeouts"] == 2
    assert figures["oom_kills"] == 1
    assert figures["throttles"] == 2
    assert figures["billed_ms"] == 700  # throttles are not billed


# -- marshalling -----------------------------------------------------------------------------


def _json_refuses(value: object) -> bool:
    """The oracle: Lambda's runtime encodes with json (Decimal as a number)."""
    def default(obj: object) -> object:
        if isinstance(obj, Decimal):
            return float(obj)
        raise TypeError(type(obj).__name__)
    try:
        json.dumps(value, default=default)
    except TypeError:
        return True
    return False


class _Text(str):
    pass


@pytest.mark.parametrize("value", [
    None, "text", 1, 1.5, True, Decimal("1.10"), _Text("sub"), OrderedDict(a=1),
    [1, (2, {"k": [None, "x"]})], {1: "a", 2.5: "b", None: "c", False: "d"},
], ids=repr)
def test_check_result_accepts_what_json_encodes(value: object) -> None:
    assert not _json_refuses(value)
    assert _core.check_result(value) in (None, _core.STDLIB)


@pytest.mark.parametrize("value", [
    float("nan"), float("inf"), 1e16, 1e-5, [1, {"x": -1e300}], {None: 1}, {False: 1},
    {2.5: "b"}, _Text("sub"),
])
def test_check_result_sends_what_only_json_formats_exactly_to_json(value: object) -> None:
    assert _core.check_result(value) is _core.STDLIB


@pytest.mark.parametrize("value", [
    {"sum": 42, "items": [1, 2], "t": (1, "two"), "s": 'a "quoted", text: yes'},
    ["é✓", "\U0001f600 emoji", {"k": "line\nbreak\u0001"}], 0.1, -0.0, 123456789.0, 10**30,
])
def test_lambda_layout_is_byte_identical_to_json_dumps(value: object) -> None:
    import msgspec

    assert _core.check_result(value) is None
    compact = msgspec.json.encode(value)
    for ascii_only in (True, False):
        expected = json.dumps(value, ensure_ascii=ascii_only).encode()
        assert _core.lambda_layout(compact, ascii_only) == expected


def test_check_result_returns_the_first_value_json_refuses() -> None:
    a_set, when, an_id, raw = {2}, datetime.datetime(2020, 1, 1), uuid.uuid4(), b"raw"
    key = (1, 2)
    for value, culprit in [
        (a_set, a_set),
        ({"a": [1, {"b": a_set}]}, a_set),
        ([1, when, an_id], when),
        ((an_id,), an_id),
        ({"nested": [raw]}, raw),
        ({key: 1}, key),
    ]:
        assert _json_refuses(value)
        assert _core.check_result(value) is culprit


# -- fork and reap -------------------------------------------------------------------------


def _fork(child: object) -> int:
    """fork_worker(); the child runs ``child()`` and always ends with os._exit."""
    pid = _core.fork_worker()
    if pid == 0:  # pragma: no cover - the child
        status = 0
        try:
            child()  # type: ignore[operator]
        except BaseException:
            status = 99
        finally:
            os._exit(status)
    return pid


def _reap(pid: int) -> tuple[int, int, int, int, int, int]:
    """Wait for ``pid`` to end (without collecting it), then collect it with reap()."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    ended = {entry[0]: entry for entry in _core.reap()}
    assert pid in ended, ended
    assert not alive(pid) and pid not in descendants(os.getpid(), include_zombies=True)
    return ended[pid]


def test_reap_reports_an_exit_status() -> None:
    pid = _fork(lambda: os._exit(3))
    assert parent_of(pid) == os.getpid()
    assert _reap(pid)[1:3] == (3, 0)


def test_reap_reports_a_killing_signal() -> None:
    pid = _fork(lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert _reap(pid)[1:3] == (-1, signal.SIGKILL)


def test_reap_reports_the_childs_resource_usage() -> None:
    def burn() -> None:
        ballast = bytearray(32 << 20)  # touched: counts in max RSS
        for i in range(0, len(ballast), 4096):
            ballast[i] = 1
        while resource.getrusage(resource.RUSAGE_SELF).ru_utime < 0.05:
            pass

    pid = _fork(burn)
    _, exit_status, signum, max_rss_kb, user_us, system_us = _reap(pid)
    assert (exit_status, signum) == (0, 0)
    assert max_rss_kb >= 32 << 10
    assert user_us >= 50_000
    assert system_us >= 0


def test_reap_without_ended_children_returns_nothing() -> None:
    pid = _fork(lambda: signal.pause())
    try:
        assert pid not in [entry[0] for entry in _core.reap()]  # still running: not collected
    finally:
        os.kill(pid, signal.SIGKILL)
    assert _reap(pid)[1:3] == (-1, signal.SIGKILL)


def test_fork_worker_reports_a_failed_child_setup() -> None:
    read_only = os.open("/dev/null", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as excinfo:
            # Writing "0" to a read-only fd fails in the child: it must not run on.
            pid = _core.fork_worker(signal.SIGKILL, (read_only,))
            if pid == 0:  # pragma: no cover - the child of a broken fork_worker
                os._exit(0)
    finally:
        os.close(read_only)
    assert excinfo.value.errno == errno.EBADF
    match = re.search(r"setting up child (\d+) failed", str(excinfo.value))
    assert match, str(excinfo.value)
    assert _reap(int(match.group(1)))[1:3] == (127, 0)


_INTERMEDIATE = textwrap.dedent("""
    import os, signal, sys
    from fastinvoke._core import fork_worker
    pid = fork_worker(signal.SIGKILL)
    if pid == 0:
        try:
            while True:
                signal.pause()
        finally:
            os._exit(0)
    print(pid, flush=True)
    sys.stdin.read()
""")


def test_fork_worker_child_dies_with_its_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _INTERMEDIATE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": ROOT}, start_new_session=True,
    )
    child = None
    try:
        child = int(read_line(parent))
        assert alive(child) and parent_of(child) == parent.pid
        parent.kill()
        assert parent.wait() == -signal.SIGKILL
        wait_until(lambda: not alive(child), timeout=10,
                   message=f"child {child} outlived its parent {parent.pid}")
    finally:
        parent.kill()
        parent.wait()
        parent.stdin.close()
        parent.stdout.close()
        if child is not None:
            kill_all([child])


def test_a_request_sent_again_has_only_its_new_deadline() -> None:
    """Its first worker ended before taking it, so it went to another worker with a new
    deadline: the first one, still in the heap, must neither expire it early nor count as
    the next deadline (a timeout there would end it twice: killed, then answered)."""
    core = _core.Dispatcher()
    for worker in (b"w1", b"w2"):
        core.add_worker(worker, "f")
    core.begin("r1", core.pop_idle("f"), 100, "e1")  # w1
    assert core.drop_worker(b"w1") == ("r1", "e1")  # it died without taking r1
    core.begin("r1", core.pop_idle("f"), 500, "e1")  # sent again, to w2
    assert core.next_deadline() == 500
    assert core.expired(200) == []
    assert core.expired(500) == [("r1", b"w2", "e1")]


# -- Reply ring ----------------------------------------------------------------------------


def _ring_pair(capacity: int) -> tuple[_core.Link, _core.Link]:
    """A worker's end (it writes the ring) and the front-end's (it reads it)."""
    ring = _core.lane_file(capacity, ring=True)
    requests = _core.lane_file()
    wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    reader = _core.Link(os.dup(ring), os.dup(requests), -1, os.eventfd(0), b"w")
    writer = _core.Link(requests, ring, os.eventfd(0), wake)
    return writer, reader


def test_a_ring_holds_many_messages_in_order_across_its_end() -> None:
    writer, reader = _ring_pair(512)
    messages = [os.urandom(size) for size in (0, 1, 7, 8, 9, 60, 100, 33, 120, 5) * 9]
    taken: list[bytes] = []
    pending = list(messages)
    while pending:
        # Three at a time (at most 3 * 128 bytes of frames, within the 512 the ring
        # holds: the writer never waits), so the frames wrap around its end again and again.
        for message in pending[:3]:
            writer.send(message)
        del pending[:3]
        assert not writer.delivered()
        while (data := reader.take()) is not None:
            taken.append(data)
        assert writer.delivered()
    assert taken == messages
    for link in (writer, reader):
        link.close()  # and the fds each was given


def test_a_message_larger_than_the_ring_grows_it_once_it_is_empty() -> None:
    writer, reader = _ring_pair(64)
    writer.send(b"small")
    big = os.urandom(10_000)
    done: list[int] = []

    def send_big() -> None:  # waits for room: the small one must be taken first
        writer.send(big)
        done.append(1)

    thread = threading.Thread(target=send_big)
    thread.start()
    assert wait_until(lambda: thread.is_alive(), timeout=1)
    assert reader.take() == b"small"
    thread.join(timeout=10)
    assert done == [1]
    assert reader.take() == big
    assert reader.take() is None
    for link in (writer, reader):
        link.close()  # and the fds each was given


def test_a_ring_capacity_is_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        _core.lane_file(100, ring=True)
