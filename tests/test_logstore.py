"""fastinvoke.logstore: the SQLite log store (real files, real writer thread)."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastinvoke import logs
from fastinvoke.filterpatterns import compile_filter
from fastinvoke.logstore import (
    BACKLOG,
    RETENTION_DAYS,
    LogEntry,
    LogEvent,
    LogStore,
    parse_duration,
    split_lines,
)

GROUP = "/aws/lambda/hello"
STREAM = "2024/05/01/[$LATEST]" + "a" * 32
OTHER = "2024/05/01/[$LATEST]" + "b" * 32
DAY_MS = 86_400_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LogStore]:
    with LogStore(tmp_path / "logs.db") as opened:
        yield opened


def invocation(request_id: str, output: str, timestamp_ms: int = 1_000) -> LogEntry:
    return LogEntry(timestamp_ms, request_id, logs.start_line(request_id) + output
                    + logs.end_line(request_id)
                    + logs.report_line(request_id, 1_500_000, 2, 128, 40))


def messages(events: list[LogEvent]) -> list[str]:
    return [event.message for event in events]


def add(store: LogStore, *lines: str, stream: str = STREAM, timestamp_ms: int = 1_000) -> None:
    """One single-line entry per line, committed."""
    store.append(GROUP, stream, [LogEntry(timestamp_ms, "rid", line) for line in lines])
    store.flush()


# -- lines ------------------------------------------------------------------------------------

def test_split_lines_keeps_newlines_and_ends_a_last_chunk() -> None:
    assert split_lines("") == []
    assert split_lines("a\n") == ["a\n"]
    assert split_lines("a\nb") == ["a\n", "b\n"]
    assert split_lines("a\n\nb\n") == ["a\n", "\n", "b\n"]
    assert split_lines("tab\there\r\nx\x0by\n") == ["tab\there\r\n", "x\x0by\n"]  # only \n splits


def test_an_invocations_text_round_trips_as_lines(store: LogStore) -> None:
    store.append(GROUP, STREAM, [invocation("r-1", "hello\nworld\n", 1_234)])
    store.flush()
    events = store.events(GROUP)
    assert messages(events) == [
        "START RequestId: r-1 Version: $LATEST\n",
        "hello\n",
        "world\n",
        "END RequestId: r-1\n",
        "REPORT RequestId: r-1\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 40 MB\t\n",
    ]
    assert {(e.timestamp_ms, e.request_id, e.stream) for e in events} == {(1_234, "r-1", STREAM)}
    assert "".join(messages(events)) == invocation("r-1", "hello\nworld\n").text


def test_an_invocation_log_is_formatted_by_the_writer(store: LogStore) -> None:
    # The output's last chunk has no newline: it stays a line of its own, not "...END".
    entry = logs.InvocationLog(5_000, "r-2", b"no newline", 2_000_000, 2, 128, 51_200,
                               init_ns=130_490_000)
    store.append(GROUP, STREAM, [entry])
    store.flush()
    assert messages(store.events(GROUP)) == [
        "START RequestId: r-2 Version: $LATEST\n",
        "no newline\n",
        "END RequestId: r-2\n",
        "REPORT RequestId: r-2\tDuration: 2.00 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 50 MB\tInit Duration: 130.49 ms\t\n",
    ]


def test_a_malformed_entry_is_dropped_and_the_writer_goes_on(
        store: LogStore, caplog: pytest.LogCaptureFixture) -> None:
    store.append(GROUP, STREAM, [object()])  # type: ignore[list-item]
    add(store, "after\n")
    assert messages(store.events(GROUP)) == ["after\n"]
    assert "dropped a malformed log entry" in caplog.text


# -- order, paging, since ---------------------------------------------------------------------

def test_events_keep_ingestion_order_across_streams(store: LogStore) -> None:
    store.append(GROUP, STREAM, [invocation("r-1", "one\n")])
    store.append(GROUP, OTHER, [LogEntry(900, "r-2", "two\nthree\n")])  # older timestamp
    store.append(GROUP, STREAM, [LogEntry(1_100, "r-3", "four\n")])
    store.append("/aws/lambda/other", STREAM, [LogEntry(1_000, "r-4", "elsewhere\n")])
    store.flush()
    events = store.events(GROUP)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert [m for m in messages(events) if not m.startswith(("START", "END", "REPORT"))] == [
        "one\n", "two\n", "three\n", "four\n"]
    assert [e.stream for e in events if e.request_id == "r-2"] == [OTHER, OTHER]
    assert store.streams(GROUP) == [STREAM, OTHER]
    assert store.groups() == {GROUP: None, "/aws/lambda/other": None}
    assert store.events("/aws/lambda/missing") == []


def test_limit_after_seq_and_tail(store: LogStore) -> None:
    add(store, *(f"line {i}\n" for i in range(10)))
    first = store.events(GROUP, limit=4)
    assert messages(first) == [f"line {i}\n" for i in range(4)]
    rest = store.events(GROUP, after_seq=first[-1].seq)
    assert messages(rest) == [f"line {i}\n" for i in range(4, 10)]
    assert messages(store.tail(GROUP, 3)) == ["line 7\n", "line 8\n", "line 9\n"]
    assert messages(store.tail(GROUP, 2, pattern="-9")) == ["line 7\n", "line 8\n"]


def test_since_selects_by_event_time(store: LogStore) -> None:
    for minute in range(5):
        add(store, f"minute {minute}\n", timestamp_ms=minute * 60_000)
    assert messages(store.events(GROUP, since_ms=3 * 60_000)) == ["minute 3\n", "minute 4\n"]
    assert store.events(GROUP, since_ms=10 * 60_000) == []


def test_parse_duration() -> None:
    assert parse_duration("30s") == 30_000
    assert parse_duration("5m") == 300_000
    assert parse_duration("2h") == 7_200_000
    assert parse_duration("1d") == DAY_MS
    assert parse_duration("1w") == 7 * DAY_MS
    assert parse_duration(" 1h30m ") == 5_400_000
    assert parse_duration("250ms") == 250
    assert parse_duration("1.5h") == 5_400_000
    for bad in ("", "5", "m", "5 minutes", "-5m", "5M", "1y"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)


# -- filter patterns --------------------------------------------------------------------------

FILTER_LINES = [
    "[ERROR] Exception occurred: boom\n",
    "[WARN] disk almost full\n",
    "[INFO] all good\n",
    "[ERROR] Timeout talking to db\n",
    'quoted "value" here\n',
    "error in lower case\n",
]


@pytest.mark.parametrize(("pattern", "expected"), [
    (None, [0, 1, 2, 3, 4, 5]),
    ("", [0, 1, 2, 3, 4, 5]),
    ("ERROR", [0, 3]),  # case-sensitive
    ("error", [5]),
    ("ERROR Timeout", [3]),  # every term
    ("Timeout ERROR", [3]),  # in any order
    ('"Exception occurred"', [0]),  # a phrase
    ('"occurred Exception"', []),
    ("?WARN ?INFO", [1, 2]),  # any of
    ("?WARN ?Timeout ?nothing", [1, 3]),
    ("ERROR -Timeout", [0]),  # exclude
    ('-"[ERROR]"', [1, 2, 4, 5]),
    ('-ERROR -"all good"', [1, 4, 5]),
    ("[ERROR]", []),  # a space-delimited pattern of one field: no line is one word
    ("?ERROR ?WARN -boom", [1, 3]),
    ("ERROR ?boom ?db", [0, 3]),
    (r'"\"value\""', [4]),  # an escaped quote in a phrase
    ("%", []),
    ("50%", []),
])
def test_filter_patterns(store: LogStore, pattern: str | None, expected: list[int]) -> None:
    add(store, *FILTER_LINES)
    assert messages(store.events(GROUP, pattern=pattern)) == [FILTER_LINES[i] for i in expected]


@pytest.mark.parametrize("pattern", ['"unterminated', 'a"b', '{ $.level = }',
                                     '{ level = "ERROR" }', '{ $.a > "x" }', '{ $.a = 1',
                                     '[a, b', '[a = ]', '{ $.a IS MAYBE }'])
def test_bad_filter_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid filter pattern"):
        compile_filter(pattern)


JSON_LINES = ['{"level": "ERROR", "latency": 150, "user": {"id": 7}, "tags": ["slow", "x"]}\n',
              '{"level": "INFO", "latency": 12.5, "user": null, "ok": true}\n',
              '{"level": "ERROR", "latency": 40, "tags": []}\n',
              "ERROR not json at all\n"]


@pytest.mark.parametrize(("pattern", "expected"), [
    ('{ $.level = "ERROR" }', [0, 2]),
    ("{ $.level = ERR* }", [0, 2]),
    ('{ $.level != "ERROR" }', [1]),
    ("{ $.latency > 100 }", [0]),
    ("{ $.latency <= 12.5 }", [1]),
    ('{ $.level = "ERROR" && $.latency < 100 }', [2]),
    ('{ $.latency > 100 || $.ok IS TRUE }', [0, 1]),
    ('{ ($.level = "INFO" || $.latency > 100) && $.user EXISTS }', [0, 1]),
    ("{ $.user IS NULL }", [1]),
    ("{ $.user.id = 7 }", [0]),
    ("{ $.user NOT EXISTS }", [2]),
    ('{ $.tags[0] = "slow" }', [0]),
    ("{ $.tags[1] NOT EXISTS }", [1, 2]),
])
def test_json_filter_patterns(store: LogStore, pattern: str, expected: list[int]) -> None:
    add(store, *JSON_LINES)
    assert messages(store.events(GROUP, pattern=pattern)) == [JSON_LINES[n] for n in expected]
    assert messages(store.tail(GROUP, 1, pattern=pattern)) == [JSON_LINES[expected[-1]]]


ACCESS_LINES = ['127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /a HTTP/1.0" 404 1534\n',
                '10.0.0.2 - - [10/Oct/2000:13:25:16 -0700] "GET /b HTTP/1.0" 200 99\n',
                '10.0.0.3 - anna [10/Oct/2000:13:25:17 -0700] "POST /c HTTP/1.0" 503 2048\n',
                "a line of another shape\n"]


@pytest.mark.parametrize(("pattern", "expected"), [
    ("[ip, user, username, timestamp, request, status, bytes]", [0, 1, 2]),
    ("[ip, user, username, timestamp, request, status = 404, bytes]", [0]),
    ("[ip, ..., status = 4* || status = 5*, bytes > 1000]", [0, 2]),
    ("[ip = 10.0.0.*, ...]", [1, 2]),
    ('[..., request = "POST /c HTTP/1.0", status, bytes]', [2]),
    ("[..., bytes < 100]", [1]),
    ("[a, line, of, another, shape]", [3]),
    ("[..., status != 200, bytes]", [0, 2]),
])
def test_space_delimited_filter_patterns(store: LogStore, pattern: str,
                                         expected: list[int]) -> None:
    add(store, *ACCESS_LINES)
    assert messages(store.events(GROUP, pattern=pattern)) == [ACCESS_LINES[n] for n in expected]


def test_filter_terms_are_not_sql_wildcards(store: LogStore) -> None:
    add(store, "100% done\n", "1000 done\n", "a_b\n", "axb\n")
    assert messages(store.events(GROUP, pattern='"0% "')) == ["100% done\n"]
    assert messages(store.events(GROUP, pattern="a_b")) == ["a_b\n"]


# -- follow -----------------------------------------------------------------------------------

def test_follow_yields_existing_then_new_events_until_stopped(store: LogStore) -> None:
    add(store, "old 1\n", "old 2\n")
    stop = threading.Event()
    seen: queue.Queue[LogEvent] = queue.Queue()
    follower = threading.Thread(target=lambda: [seen.put(event) for event in store.follow(
        GROUP, poll_s=0.01, stop=stop)])
    follower.start()
    try:
        assert [seen.get(timeout=10).message for _ in range(2)] == ["old 1\n", "old 2\n"]
        # Not flushed: the writer commits it by itself within its ~50 ms batch period.
        store.append(GROUP, STREAM, [LogEntry(2_000, "r-new", "new 1\n")])
        assert seen.get(timeout=10).message == "new 1\n"
        add(store, "new 2\n", "new 3\n", stream=OTHER)
        assert [seen.get(timeout=10).message for _ in range(2)] == ["new 2\n", "new 3\n"]
    finally:
        stop.set()
        follower.join(timeout=10)
    assert not follower.is_alive()
    assert seen.empty()


def test_follow_filters_and_pages(store: LogStore) -> None:
    add(store, *(f"{'ERROR' if i % 2 else 'INFO'} {i}\n" for i in range(2_500)),
        timestamp_ms=50_000)
    add(store, "ERROR too old\n", timestamp_ms=10_000)
    stop = threading.Event()
    follow = store.follow(GROUP, pattern="ERROR", since_ms=20_000, poll_s=0.01, stop=stop)
    assert [next(follow).message for _ in range(1_250)] == [
        f"ERROR {i}\n" for i in range(1, 2_500, 2)]
    add(store, "INFO skipped\n", "ERROR later\n", timestamp_ms=60_000)
    assert next(follow).message == "ERROR later\n"
    stop.set()
    assert list(follow) == []


def test_follow_ends_when_the_store_closes(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.db")
    add(store, "x\n")
    follow = store.follow(GROUP, poll_s=0.01)
    assert next(follow).message == "x\n"
    store.close()
    assert list(follow) == []


# -- retention --------------------------------------------------------------------------------

def test_retention_values_are_cloudwatchs(store: LogStore) -> None:
    for days in (0, 2, 4, 366, 10_000, -1):
        with pytest.raises(ValueError, match=r"1, 3, 5, 7, 14, 30, .* 3653"):
            store.set_retention(GROUP, days)
    for days in RETENTION_DAYS:
        store.set_retention(GROUP, days)
    store.set_retention(GROUP, None)
    assert store.groups() == {GROUP: None}


def test_purge_deletes_expired_events_only(store: LogStore) -> None:
    now = 100 * DAY_MS
    add(store, "ancient\n", timestamp_ms=now - 8 * DAY_MS)
    add(store, "old\n", timestamp_ms=now - 2 * DAY_MS)
    add(store, "fresh\n", timestamp_ms=now - 1_000)
    store.append("/aws/lambda/kept", STREAM, [LogEntry(0, "r", "forever\n")])
    store.flush()
    assert store.purge(now_ms=now) == 0  # no retention set: never expire
    store.set_retention(GROUP, 7)
    assert store.groups() == {GROUP: 7, "/aws/lambda/kept": None}
    assert store.purge(now_ms=now) == 1
    assert messages(store.events(GROUP)) == ["old\n", "fresh\n"]
    store.set_retention(GROUP, 1)
    assert store.purge(now_ms=now) == 1
    assert messages(store.events(GROUP)) == ["fresh\n"]
    assert messages(store.events("/aws/lambda/kept")) == ["forever\n"]


def test_delete_group(store: LogStore) -> None:
    add(store, "a\n")
    store.append(GROUP, OTHER, [LogEntry(1, "r", "queued before the delete\n")])
    assert store.delete_group(GROUP) is True
    assert store.delete_group(GROUP) is False
    assert store.events(GROUP) == [] and store.streams(GROUP) == [] and store.groups() == {}
    add(store, "b\n")  # the group comes back with its next event
    assert messages(store.events(GROUP)) == ["b\n"]
    assert store.events(GROUP)[0].seq == 3  # seq numbers of deleted events are not reused


# -- load, persistence, lifecycle -------------------------------------------------------------

def test_100000_lines_from_4_threads_all_land_in_order(store: LogStore) -> None:
    threads, per_thread = 4, 25_000
    start = threading.Barrier(threads)

    def produce(worker: int) -> None:
        stream = f"2024/05/01/[$LATEST]{worker:032x}"
        start.wait()
        for i in range(per_thread):
            store.append(GROUP, stream, [LogEntry(i, f"r-{worker}-{i}", f"{worker} {i}\n")])

    producers = [threading.Thread(target=produce, args=(w,)) for w in range(threads)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
    store.flush()
    events = store.events(GROUP)
    assert len(events) == threads * per_thread
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    for worker in range(threads):
        mine = [e for e in events if e.stream == f"2024/05/01/[$LATEST]{worker:032x}"]
        assert [e.message for e in mine] == [f"{worker} {i}\n" for i in range(per_thread)]
        assert [e.request_id for e in mine] == [f"r-{worker}-{i}" for i in range(per_thread)]


def test_data_persists_in_a_wal_file(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    now_ms = time.time_ns() // 1_000_000  # within the retention: the writer purges on start
    with LogStore(path) as store:
        store.set_retention(GROUP, 30)
        store.append(GROUP, STREAM, [invocation("r-1", "kept\n", now_ms)])
        # no flush: close commits what is queued
    with LogStore(path) as store:
        assert "kept\n" in messages(store.events(GROUP))
        assert store.groups() == {GROUP: 30}
        add(store, "more\n", timestamp_ms=now_ms)
        assert store.events(GROUP)[-1].message == "more\n"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 5
    finally:
        conn.close()


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.db")
    store.close()
    store.close()
    store.flush()  # nothing queued: nothing to wait for
    with pytest.raises(RuntimeError, match="closed"):
        store.append(GROUP, STREAM, [LogEntry(0, "r", "late\n")])
    with pytest.raises(RuntimeError, match="closed"):
        store.purge()


# -- backlog ----------------------------------------------------------------------------------

def test_appends_beyond_the_backlog_wait_for_the_writer(store: LogStore) -> None:
    """Entries appended faster than they are written queue up to the backlog, then each
    append waits until the writer has caught up: memory stays bounded, nothing is lost
    and every line keeps its place (the writer inserts them by the hundred)."""
    total = 2 * BACKLOG + 1_000
    most = 0
    for number in range(total):
        store.append(GROUP, STREAM, [LogEntry(1_000, f"r-{number}", f"line {number}\n")])
        most = max(most, len(store._queue))
    assert most <= BACKLOG
    store.flush()
    events = store.events(GROUP, limit=total + 1)
    assert [event.message for event in events] == [f"line {n}\n" for n in range(total)]


def test_appends_do_not_wait_for_a_writer_that_cannot_write(tmp_path: Path) -> None:
    """While another connection holds the database (the writer's inserts fail once its
    busy timeout passes), appends beyond the backlog go on, and are written once it can."""
    path = tmp_path / "logs.db"
    with LogStore(path) as store:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        total = BACKLOG + 1_000

        def append_all() -> None:
            for number in range(total):
                store.append(GROUP, STREAM, [LogEntry(1_000, f"r-{number}", "x\n")])

        appender = threading.Thread(target=append_all)
        appender.start()
        appender.join(timeout=60)
        holder.execute("ROLLBACK")
        holder.close()
        assert not appender.is_alive(), "appends waited for a writer that cannot write"
        store.flush()
        assert len(store.events(GROUP, limit=total + 1)) == total
