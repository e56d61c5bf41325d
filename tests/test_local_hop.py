"""The local hop (dispatcher <-> worker over shared memory: csrc/lane.h, _core.Link) through
real parts: a real Invoker, real template and worker processes, handlers from
tests/functions/hop.py.

Workers dying mid-invocation and while idle, payloads at Lambda's limits (the lanes grow
from 64 KB), many callers interleaved, an idle pool's CPU use, the lanes' fds and mappings
after workers end (and the doorbell's after close), and wake-ups never lost.  What a test
needs to know about running invocations it learns from the handlers themselves (``hold``:
they connect to a socket of the test and wait for its word) or from /proc (processes, fds,
mappings, the lanes' shared headers), never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import os
import random
import signal
import socket
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    ONE_VCPU_MB,
    MakeFunction,
    MakeInvoker,
    alive,
    descendants,
    document,
    log_of,
    parent_of,
    process_state,
    report_of,
    tail_text,
    wait_until,
)

from fastinvoke import Invoker
from fastinvoke.errors import RequestEntityTooLargeException
from fastinvoke.limits import RESPONSE_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT

LANE = "/memfd:fastinvoke-lane"  # what /proc/<pid>/fd shows of a lane's memfd
DOORBELL = "/memfd:fastinvoke-doorbell"  # the front-end's doorbell (one per Invoker)
FIRST_LANE_CAPACITY = 64 * 1024  # _core.LANE_CAPACITY: a lane's data area before it grows


# -- the handlers' side: holding invocations, expected results --------------------------------


class Holder:
    """A Unix stream socket for ``hop.handler``'s ``hold``: each held invocation connects
    and says hello (``{"id", "pid", "request_id"}``), then waits for the word the test
    sends it (``release``).  Accepting a hello is how the test knows the invocation runs
    on a worker; a held handler blocks in ``recv`` and uses no CPU."""

    def __init__(self, timeout: float = 30.0) -> None:
        self._dir = tempfile.mkdtemp(prefix="fi-", dir="/tmp")  # sun_path is 108 bytes
        self.path = os.path.join(self._dir, "h")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(128)
        self._sock.settimeout(timeout)
        self._held: dict[str, socket.socket] = {}

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        """The hellos of the next ``count`` invocations to connect (blocks until they do)."""
        hellos = []
        for _ in range(count):
            conn, _ = self._sock.accept()
            conn.settimeout(self._sock.gettimeout())
            with conn.makefile("rb") as lines:
                hello = json.loads(lines.readline())
            self._held[hello["id"]] = conn
            hellos.append(hello)
        return hellos

    def release(self, invocation_id: str, word: Any) -> None:
        conn = self._held.pop(invocation_id)
        try:
            conn.sendall(json.dumps(word).encode() + b"\n")
        finally:
            conn.close()

    def close(self) -> None:
        for conn in self._held.values():  # a handler still held gets EOF: it returns
            conn.close()
        self._held.clear()
        self._sock.close()
        os.unlink(self.path)
        os.rmdir(self._dir)


@contextmanager
def holding() -> Iterator[Holder]:
    holder = Holder()
    try:
        yield holder
    finally:
        holder.close()


def blob_bytes(seed: int, size: int) -> bytes:
    """What ``hop.blob`` returns for ``{"seed", "size", "raw": true}``, computed here."""
    return random.Random(seed).randbytes(size)


def blob_json(seed: int, size: int) -> bytes:
    """The exact payload of ``hop.blob`` for ``{"seed", "size"}``: a JSON string."""
    text = base64.b64encode(blob_bytes(seed, size * 3 // 4 + 3)).decode()[:size]
    return b'"' + text.encode() + b'"'


def json_string_of_size(size: int, seed: int = 0) -> bytes:
    """A JSON document of exactly ``size`` bytes: one string of varied ASCII characters
    (so a misplaced or stale byte shows in its hash)."""
    return blob_json(seed, size - 2)


def assert_exit_error(result: Any, reason: str) -> None:
    """Lambda's answer for a runtime that ended mid-invocation (``Runtime.ExitError``)."""
    rid = result.request_id
    assert (result.status_code, result.function_error) == (200, "Unhandled"), result
    message = f"RequestId: {rid} Error: Runtime exited with error: {reason}"
    assert result.payload == json.dumps(
        {"errorType": "Runtime.ExitError", "errorMessage": message},
        separators=(",", ":")).encode(), result.payload
    if result.log_result is not None:
        text = tail_text(result)
        assert f"\n{message}\nRuntime.ExitError\nEND RequestId: {rid}\n" in text, text
        report = report_of(text)
        assert (report["status"], report["error_type"]) == ("error", "Runtime.ExitError")


def answer(result: Any) -> dict[str, Any]:
    """The decoded answer of a successful ``hop.handler`` invocation."""
    assert (result.status_code, result.function_error) == (200, None), result.payload[:300]
    return document(result)


def recorded(directory: Path) -> list[dict[str, Any]]:
    """The lines ``hop.handler`` appended to ``<directory>/ran``, one per run."""
    path = directory / "ran"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- processes and fds seen through /proc -------------------------------------------------------


def fds_to(pid: int | str, target: str) -> dict[int, int]:
    """The fds of ``pid`` whose /proc link starts with ``target``: fd -> inode."""
    found = {}
    directory = f"/proc/{pid}/fd"
    for entry in os.listdir(directory):
        path = f"{directory}/{entry}"
        try:
            if os.readlink(path).startswith(target):
                found[int(entry)] = os.stat(path).st_ino
        except (FileNotFoundError, ProcessLookupError):
            continue  # closed while we looked (the listing's own fd, for one)
    return found


def lane_fds(pid: int | str = "self") -> dict[int, int]:
    """The lane memfds ``pid`` holds open: fd -> inode."""
    return fds_to(pid, LANE)


def eventfd_count(pid: int | str = "self") -> int:
    return len(fds_to(pid, "anon_inode:[eventfd]"))


def mapped(pid: int | str, name: str) -> set[int]:
    """The inodes of the memfds called ``name`` that ``pid`` has mapped (a mapping
    outlives its fd)."""
    inodes = set()
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            if f"memfd:{name}" in line:
                inodes.add(int(line.split()[4]))
    return inodes


def mapped_lanes(pid: int | str = "self") -> set[int]:
    return mapped(pid, "fastinvoke-lane")


def lane_headers(pid: int) -> list[tuple[int, int, int]]:
    """``(seq, taken, capacity)`` of each lane ``pid`` holds, read from the shared header
    (csrc/lane.h: seq, length, capacity at 0, 8, 16; taken at 64)."""
    headers = []
    for fd in lane_fds(pid):
        with open(f"/proc/{pid}/fd/{fd}", "rb") as lane:
            raw = os.pread(lane.fileno(), 72, 0)
        seq, _, capacity = struct.unpack_from("<QQQ", raw, 0)
        (taken,) = struct.unpack_from("<Q", raw, 64)
        headers.append((seq, taken, capacity))
    return headers


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pool_processes() -> tuple[set[int], set[int]]:
    """(templates, workers) of this process's Invokers, from /proc: templates are our
    children running fastinvoke.runtime.template, workers are the templates' children."""
    me = os.getpid()
    templates = {pid for pid in descendants(me)
                 if parent_of(pid) == me and "fastinvoke.runtime.template" in cmdline(pid)}
    workers = {pid for pid in descendants(me) if parent_of(pid) in templates}
    return templates, workers


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` (all its threads) in clock ticks, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as file:
        text = file.read()
    fields = text[text.rindex(b")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[11]) + int(fields[12])  # fields 14 (utime) and 15 (stime)


# -- 1. a worker dying mid-invocation ---------------------------------------------------------

DEATHS = [("exit", "exit status 3"), ("kill", "signal: killed"),
          ("segv", "signal: segmentation fault")]


@pytest.mark.parametrize(("die", "reason"), DEATHS, ids=[d for d, _ in DEATHS])
def test_a_worker_dying_mid_invocation_fails_that_invocation_alone(
        invoker: Invoker, make_function: MakeFunction, tmp_path: Path, die: str,
        reason: str) -> None:
    """While three invocations run (held) on three workers, a fourth worker's runtime ends
    mid-invocation: that invocation alone gets Runtime.ExitError, the pool heals at once
    (with the three still held), and each held caller then gets its own answer."""
    name = make_function("hop.handler", timeout_s=60)
    others = 3
    with holding() as holder, ThreadPoolExecutor(others) as threads:
        events = [{"id": f"other-{i}", "hold": holder.path, "echo": uuid.uuid4().hex}
                  for i in range(others)]
        futures = {event["id"]: threads.submit(invoker.invoke, name, event) for event in events}
        hellos = {hello["id"]: hello for hello in holder.wait_for(others)}
        held_pids = {hello["pid"] for hello in hellos.values()}
        assert len(held_pids) == others

        doomed = invoker.invoke(name, {"id": "doomed", "die": die, "record": str(tmp_path)},
                                log_type="Tail")
        assert_exit_error(doomed, reason)
        [ran] = recorded(tmp_path)
        assert ran["request_id"] == doomed.request_id
        dead_pid = ran["pid"]
        assert dead_pid not in held_pids  # a worker of its own: the others were busy

        healed = answer(invoker.invoke(name, {"id": "healed", "echo": "after the crash"}))
        assert healed["echo"] == "after the crash"
        assert healed["pid"] not in held_pids | {dead_pid}

        for hello in reversed(list(hellos.values())):  # not in the order they started
            holder.release(hello["id"], {"for": hello["id"], "rid": hello["request_id"]})
        results = {key: future.result(30) for key, future in futures.items()}

    for event in events:
        result = results[event["id"]]
        assert answer(result) == {
            "id": event["id"], "pid": hellos[event["id"]]["pid"],
            "request_id": result.request_id,
            "word": {"for": event["id"], "rid": result.request_id}, "echo": event["echo"],
        }
    wait_until(lambda: not alive(dead_pid), message=f"crashed worker {dead_pid} lives")
    figures = invoker.meter(name)
    assert (figures["invocations"], figures["errors"], figures["timeouts"]) == (others + 2, 1, 0)


def test_crashes_amid_a_stream_of_invocations_touch_no_other_caller(
        invoker: Invoker, make_function: MakeFunction) -> None:
    """Eight threads invoke steadily while another one makes workers die (each way, twice):
    every crash is its own caller's ExitError, every other call its own right answer."""
    name = make_function("hop.handler", timeout_s=30)
    threads, calls = 8, 25
    barrier = threading.Barrier(threads + 1)

    def stream(thread: int) -> list[tuple[dict[str, Any], Any]]:
        barrier.wait()
        out = []
        for i in range(calls):
            event = {"id": f"t{thread}-{i}", "echo": uuid.uuid4().hex}
            out.append((event, invoker.invoke(name, event)))
        return out

    def crash() -> list[tuple[str, Any]]:
        barrier.wait()
        return [(reason, invoker.invoke(name, {"id": f"doomed-{n}", "die": die},
                                        log_type="Tail"))
                for n, (die, reason) in enumerate(DEATHS * 2)]

    with ThreadPoolExecutor(threads + 1) as pool:
        streams = [pool.submit(stream, t) for t in range(threads)]
        crashes = pool.submit(crash)
        outcomes = [item for future in streams for item in future.result(60)]
        crashed = crashes.result(60)

    for reason, result in crashed:
        assert_exit_error(result, reason)
    for event, result in outcomes:
        got = answer(result)
        assert (got["id"], got["echo"], got["request_id"]) == (
            event["id"], event["echo"], result.request_id)
    request_ids = [r.request_id for _, r in outcomes] + [r.request_id for _, r in crashed]
    assert len(set(request_ids)) == len(request_ids)
    figures = invoker.meter(name)
    assert (figures["invocations"], figures["errors"]) == (
        threads * calls + len(crashed), len(crashed))


# -- 2. a worker killed while idle ------------------------------------------------------------

def _message_waits_in_lane(pid: int) -> bool:
    """Whether a message was published to one of ``pid``'s lanes and not taken."""
    return any(seq == taken + 1 for seq, taken, _ in lane_headers(pid))


@pytest.mark.parametrize("max_workers", [1, None], ids=["max_workers=1", "unbounded"])
@pytest.mark.parametrize("how", ["stopped-with-the-request-waiting", "killed-then-invoked",
                                 "killed-and-reaped"])
def test_a_worker_killed_while_idle_loses_no_invocation(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path, how: str,
        max_workers: int | None) -> None:
    """SIGKILL an idle worker; the next invocation runs once, on a new worker, and
    succeeds.  ``stopped-with-the-request-waiting`` pins the interesting order: the worker
    is stopped (SIGSTOP), the invocation is published to its request lane (seen in the
    shared header), and only then is it killed, so the request was sent and never taken."""
    invoker = make_invoker(max_workers=max_workers)
    name = make_function("hop.handler", invoker=invoker, timeout_s=30)
    warm = answer(invoker.invoke(name, {"id": "warm"}))
    victim = warm["pid"]
    event = {"id": "next", "record": str(tmp_path)}
    if how == "stopped-with-the-request-waiting":
        os.kill(victim, signal.SIGSTOP)
        wait_until(lambda: process_state(victim) == "T", message=f"{victim} not stopped")
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(invoker.invoke, name, event)
            wait_until(lambda: _message_waits_in_lane(victim) or future.done(),
                       message=lambda: f"no request waits in {lane_headers(victim)}")
            assert not future.done(), "a stopped worker's invocation ended"
            os.kill(victim, signal.SIGKILL)
            result = future.result(30)
    else:
        os.kill(victim, signal.SIGKILL)
        if how == "killed-and-reaped":
            wait_until(lambda: process_state(victim) is None, message=f"{victim} not reaped")
        result = invoker.invoke(name, event)

    got = answer(result)  # not Runtime.ExitError: it never ran on the killed worker
    assert (got["id"], got["request_id"]) == ("next", result.request_id)
    assert got["pid"] != victim
    after = answer(invoker.invoke(name, {"id": "after", "record": str(tmp_path)}))
    assert [(line["id"], line["request_id"]) for line in recorded(tmp_path)] == [
        ("next", result.request_id), ("after", after["request_id"])]  # each ran once
    wait_until(lambda: not alive(victim), message=f"killed worker {victim} lives")
    figures = invoker.meter(name)
    assert (figures["invocations"], figures["errors"], figures["concurrent"]) == (3, 0, 0)


# -- 3. payloads at Lambda's limits -------------------------------------------------------------


@pytest.fixture
def one_worker(make_invoker: MakeInvoker) -> Invoker:
    """An Invoker whose functions get one worker at most: all of a function's invocations
    run on the same worker while it lives (no spare worker is forked beside it)."""
    return make_invoker(max_workers=1)


def test_requests_up_to_the_sync_limit_round_trip(one_worker: Invoker,
                                                  make_function: MakeFunction) -> None:
    """Events of 6,000,000 bytes and of exactly the 6 MiB limit reach the handler whole
    (length and hash), on one worker whose request lane grew past its first 64 KB; small
    invocations before, between and after get their own answers on the same worker."""
    invoker = one_worker
    name = make_function("hop.digest", invoker=invoker, memory_mb=ONE_VCPU_MB)
    small = invoker.call(name, {"n": 1})
    pid = small["pid"]
    assert max(capacity for _, _, capacity in lane_headers(pid)) == FIRST_LANE_CAPACITY
    for size, seed in ((6_000_000, 1), (SYNC_PAYLOAD_LIMIT, 2), (6_000_000, 3)):
        body = json_string_of_size(size, seed)
        assert len(body) == size
        text = body[1:-1]
        assert invoker.call(name, body) == {
            "length": len(text), "sha256": hashlib.sha256(text).hexdigest(), "pid": pid}
        assert invoker.call(name, {"n": size}) == {
            "length": len(b'{"n": %d}' % size),
            "sha256": hashlib.sha256(b'{"n": %d}' % size).hexdigest(), "pid": pid}
    assert max(capacity for _, _, capacity in lane_headers(pid)) >= SYNC_PAYLOAD_LIMIT


def test_a_request_over_the_sync_limit_is_refused_before_anything_runs(
        one_worker: Invoker, make_function: MakeFunction, tmp_path: Path) -> None:
    invoker = one_worker
    name = make_function("hop.handler", invoker=invoker)
    warm = answer(invoker.invoke(name, {"id": "warm", "record": str(tmp_path)}))
    prefix = json.dumps({"id": "huge", "record": str(tmp_path), "pad": ""})[:-2].encode()
    body = prefix + b"y" * (SYNC_PAYLOAD_LIMIT + 1 - len(prefix) - 2) + b'"}'
    assert len(body) == SYNC_PAYLOAD_LIMIT + 1
    json.loads(body)  # valid: refused for its size alone
    with pytest.raises(RequestEntityTooLargeException) as refused:
        invoker.invoke(name, body)
    assert str(refused.value) == (
        f"{SYNC_PAYLOAD_LIMIT + 1} byte payload is too large for the RequestResponse "
        f"invocation type (limit {SYNC_PAYLOAD_LIMIT} bytes)")
    assert [line["id"] for line in recorded(tmp_path)] == ["warm"]  # it never ran
    assert invoker.meter(name)["invocations"] == 1
    again = answer(invoker.invoke(name, {"id": "again", "record": str(tmp_path)}))
    assert again["pid"] == warm["pid"]  # nothing happened to the worker either
    assert [line["id"] for line in recorded(tmp_path)] == ["warm", "again"]


def test_large_results_come_back_byte_exact(one_worker: Invoker,
                                            make_function: MakeFunction) -> None:
    """Results of ~5.9 MB (a JSON string, and raw bytes of every value) and of exactly the
    response limit arrive byte for byte; the reply lane grows, and small answers from the
    same worker stay right in between."""
    invoker = one_worker
    name = make_function("hop.blob", invoker=invoker, memory_mb=ONE_VCPU_MB)
    cases = [
        ({"seed": 0, "size": 10}, blob_json(0, 10)),
        ({"seed": 1, "size": 5_900_000}, blob_json(1, 5_900_000)),
        ({"seed": 2, "size": 9}, blob_json(2, 9)),
        ({"seed": 3, "size": 5_900_000, "raw": True}, blob_bytes(3, 5_900_000)),
        ({"seed": 4, "size": 3}, blob_json(4, 3)),
        ({"seed": 5, "size": RESPONSE_PAYLOAD_LIMIT - 2},
         blob_json(5, RESPONSE_PAYLOAD_LIMIT - 2)),  # exactly the limit
        ({"seed": 6, "size": 4_000_000, "raw": True}, blob_bytes(6, 4_000_000)),
        ({"seed": 7, "size": 1}, blob_json(7, 1)),
    ]
    assert len(cases[5][1]) == RESPONSE_PAYLOAD_LIMIT
    for event, expected in cases:
        result = invoker.invoke(name, event)
        assert result.function_error is None, result.payload[:300]
        assert len(result.payload) == len(expected), event
        assert result.payload == expected, event
    figures = invoker.meter(name)
    assert (figures["invocations"], figures["cold_starts"]) == (len(cases), 1)  # one worker


def test_a_result_over_the_limit_is_response_size_too_large(
        one_worker: Invoker, make_function: MakeFunction) -> None:
    invoker = one_worker
    name = make_function("hop.blob", invoker=invoker, memory_mb=ONE_VCPU_MB)
    assert invoker.invoke(name, {"seed": 8, "size": 5}).payload == blob_json(8, 5)
    result = invoker.invoke(name, {"seed": 9, "size": RESPONSE_PAYLOAD_LIMIT - 1})  # +1 byte
    assert (result.status_code, result.function_error) == (200, "Unhandled")
    assert document(result) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
                        f"({RESPONSE_PAYLOAD_LIMIT} bytes).",
        "errorType": "Function.ResponseSizeTooLarge"}
    raw = invoker.invoke(name, {"seed": 10, "size": RESPONSE_PAYLOAD_LIMIT + 1, "raw": True})
    assert document(raw)["errorType"] == "Function.ResponseSizeTooLarge"
    assert invoker.invoke(name, {"seed": 11, "size": 7}).payload == blob_json(11, 7)
    figures = invoker.meter(name)
    assert (figures["invocations"], figures["errors"], figures["cold_starts"]) == (4, 2, 1)


def test_megabytes_of_output_are_answered_and_stored(one_worker: Invoker,
                                                     make_function: MakeFunction) -> None:
    """A handler printing 4 MB (more than its output pipe holds, and a reply far
    past the lane's first 64 KB) still answers; every line is in the stored log, and the
    same worker goes on answering."""
    invoker = one_worker
    name = make_function("hop.chatty", invoker=invoker, memory_mb=ONE_VCPU_MB)
    pid = invoker.call(name, {"lines": 1, "width": 20})["pid"]
    lines, width = 40_000, 100
    result = invoker.invoke(name, {"lines": lines, "width": width}, log_type="Tail")
    assert document(result) == {"lines": lines, "pid": pid}
    assert tail_text(result).split("\n")[-5:-3] == [f"line {lines - 1:08d} " + "x" * 85,
                                                    f"printed all {lines}"]
    text = log_of(invoker, name, result.request_id)
    assert text is not None
    printed = [line for line in text.split("\n") if line.startswith("line ")]
    assert printed == [f"line {n:08d} " + "x" * (width - 15) for n in range(lines)]
    assert f"\nprinted all {lines}\nEND RequestId: {result.request_id}\n" in text
    for n in range(3):
        assert invoker.call(name, {"lines": n, "width": 16}) == {"lines": n, "pid": pid}


def test_messages_around_the_first_lane_capacity(one_worker: Invoker,
                                                 make_function: MakeFunction) -> None:
    """Echoed events (so requests and replies) from a few hundred bytes under the lanes'
    first 64 KB to past it, one byte apart: in each direction the message that fills a
    lane exactly and the first that grows it come through whole; then small ones again."""
    invoker = one_worker
    name = make_function("hop.handler", invoker=invoker, memory_mb=ONE_VCPU_MB)
    pid = answer(invoker.invoke(name, {"id": "first"}))["pid"]
    for size in range(FIRST_LANE_CAPACITY - 400, FIRST_LANE_CAPACITY + 8):
        text = json_string_of_size(size - len(b'{"id":"s","echo":}'), seed=size)
        body = b'{"id":"s","echo":' + text + b"}"
        assert len(body) == size
        got = answer(invoker.invoke(name, body))
        assert (got["echo"], got["pid"]) == (text[1:-1].decode(), pid), size
    capacities = [capacity for _, _, capacity in lane_headers(pid)]
    assert len(capacities) == 2 and min(capacities) > FIRST_LANE_CAPACITY  # both grew
    for n in range(3):
        assert answer(invoker.invoke(name, {"id": "small", "echo": n}))["echo"] == n


# -- 4. many callers interleaved ----------------------------------------------------------------


@pytest.mark.parametrize("cpu_limits", ["off", "proportional"],
                         ids=["workers-spin", "workers-sleep"])
def test_threads_and_asyncio_interleaved_each_get_their_own_answer(
        make_invoker: MakeInvoker, make_function: MakeFunction, cpu_limits: str) -> None:
    """16 threads and an asyncio loop invoke at once through 2 workers (max_workers=2): each
    caller gets the answer to its own event.  Events of assorted sizes, some past 64 KB,
    make lanes grow while the traffic interleaves.  With ``cpu_limits="off"`` a worker
    spins briefly after a reply (a request may come with no system call); with the
    proportional CPU share it sleeps at once."""
    invoker = make_invoker(max_workers=2, cpu_limits=cpu_limits)
    name = make_function("hop.handler", invoker=invoker, timeout_s=30)
    threads, calls, tasks = 16, 30, 200
    sizes = [0, 10, 1000, 70_000, 5, 150_000, 300]

    def event_for(caller: str, i: int) -> dict[str, Any]:
        size = sizes[(i + len(caller)) % len(sizes)]
        return {"id": f"{caller}-{i}", "echo": {"nonce": uuid.uuid4().hex,
                                                "pad": "p" * size}}

    barrier = threading.Barrier(threads + 1)

    def stream(thread: int) -> list[tuple[dict[str, Any], Any]]:
        barrier.wait()
        out = []
        for i in range(calls):
            event = event_for(f"t{thread}", i)
            out.append((event, invoker.invoke(name, event)))
        return out

    async def flood() -> list[tuple[dict[str, Any], Any]]:
        events = [event_for("a", i) for i in range(tasks)]
        barrier.wait()
        results = await asyncio.wait_for(
            asyncio.gather(*(invoker.ainvoke(name, event) for event in events)), 60)
        return list(zip(events, results, strict=True))

    with ThreadPoolExecutor(threads) as pool:
        streams = [pool.submit(stream, t) for t in range(threads)]
        awaited = asyncio.run(flood())
        outcomes = [item for future in streams for item in future.result(60)] + awaited

    assert len(outcomes) == threads * calls + tasks
    pids = set()
    for event, result in outcomes:
        got = answer(result)
        assert (got["id"], got["echo"], got["request_id"]) == (
            event["id"], event["echo"], result.request_id)
        pids.add(got["pid"])
    assert len({result.request_id for _, result in outcomes}) == len(outcomes)
    assert len(pids) == 2, pids  # both workers, each reused heavily
    figures = invoker.meter(name)
    assert (figures["invocations"], figures["errors"], figures["cold_starts"]) == (
        len(outcomes), 0, 2)


# -- 5. an idle pool spins no CPU ---------------------------------------------------------------


@pytest.mark.parametrize("cpu_limits", ["off", "proportional"],
                         ids=["workers-may-spin", "workers-sleep"])
def test_an_idle_pool_uses_no_cpu(make_invoker: MakeInvoker, make_function: MakeFunction,
                                  cpu_limits: str) -> None:
    """20 warm workers (a spare too, if one was forked) and their template, idle after 20
    concurrent invocations, use (almost) no CPU over a 2-second window.

    The bound: at most 5 clock ticks for all of them together (at 100 Hz, 50 ms of CPU in
    2 s: 2.5 % of one core, shared by 21 processes).  An idle worker waits in a blocking
    eventfd read and its template in select, so they should use none at all; the slack
    absorbs tick sampling (a process caught by a tick while it briefly runs is charged a
    whole tick).  One worker spinning on its lane instead of sleeping would take ~200
    ticks in the window (~14 even when held to the proportional CPU share of a 128 MB
    function, 7 % of a core).  With ``cpu_limits="off"`` workers spin for up to 100 us
    after each reply before they sleep: the case where a spin that never ends would show.
    A control at the end checks that the probe sees CPU these processes do use."""
    invoker = make_invoker(cpu_limits=cpu_limits)
    name = make_function("hop.handler", invoker=invoker, timeout_s=60)
    count = 20
    with holding() as holder, ThreadPoolExecutor(count) as threads:
        futures = [threads.submit(invoker.invoke, name, {"id": f"w{i}", "hold": holder.path})
                   for i in range(count)]
        hellos = holder.wait_for(count)  # all 20 run at once: 20 workers
        for hello in hellos:
            holder.release(hello["id"], "go")
        results = [answer(future.result(30)) for future in futures]
    ran_on = {result["pid"] for result in results}
    assert len(ran_on) == count
    templates, workers = pool_processes()  # a spare worker too, if one was forked
    assert len(templates) == 1 and ran_on <= workers
    processes = sorted(workers | templates)

    hz = os.sysconf("SC_CLK_TCK")
    window_s = 2.0
    before = {pid: cpu_ticks(pid) for pid in processes}
    time.sleep(window_s)  # the measured window (not a wait for anything)
    after = {pid: cpu_ticks(pid) for pid in processes}
    assert pool_processes() == (templates, workers)  # none ended or started meanwhile
    used = {pid: after[pid] - before[pid] for pid in processes}
    bound = 5 * hz // 100  # 5 ticks at 100 Hz: 50 ms of CPU
    assert sum(used.values()) <= bound, (
        f"idle pool used {sum(used.values())} ticks ({hz} Hz) in {window_s} s: "
        f"{ {pid: n for pid, n in used.items() if n} }")

    # Control: CPU a worker does use is seen (50 ms of it is 5 ticks at 100 Hz).
    burner = answer(invoker.invoke(name, {"id": "burn", "burn_cpu_s": 0.05}))["pid"]
    assert burner in workers
    assert cpu_ticks(burner) - after[burner] >= 3 * hz // 100


# -- 6. no fd or mapping of a lane outlives its worker -------------------------------------------


def _lanes_match_workers(own_eventfds: int) -> bool:
    workers = pool_processes()[1]
    return (len(lane_fds()) == 2 * len(workers)
            and eventfd_count() == own_eventfds + len(workers)
            and all(_link_made(pid) for pid in workers))


def _link_made(pid: int) -> bool:
    """Whether worker ``pid`` has made its link: the doorbell fd it was forked with is
    mapped and closed (a worker just forked, a spare say, still holds it)."""
    try:
        return fds_to(pid, DOORBELL) == {}
    except FileNotFoundError:
        return False  # it ended meanwhile: the next look no longer counts it


def _check_lanes(own_eventfds: int) -> set[int]:
    """The front-end holds exactly the live workers' lanes (2 each: fds and mappings) and
    one eventfd each besides the Invoker's own; every worker holds its own two lanes and
    two eventfds (its own, the front-end's) and maps the front-end's doorbell; no template
    keeps any of them.  Returns the live workers.  (Waits, bounded, for a worker still
    starting: the front-end makes its lanes before the template forks it, and the worker
    closes the doorbell's fd once it has mapped it.)"""
    wait_until(lambda: _lanes_match_workers(own_eventfds), timeout=10, message=lambda: (
        f"the front-end holds {len(lane_fds())} lane fds and "
        f"{eventfd_count() - own_eventfds} worker eventfds for "
        f"{len(pool_processes()[1])} live workers; workers still holding the doorbell's "
        f"fd: {[pid for pid in pool_processes()[1] if not _link_made(pid)]}"))
    templates, workers = pool_processes()
    ours = set(lane_fds().values())
    assert len(ours) == 2 * len(workers)
    [bell] = fds_to("self", DOORBELL).values()  # this test's one Invoker's
    theirs: set[int] = set()
    for pid in workers:
        lanes = set(lane_fds(pid).values())
        assert len(lanes) == 2, f"worker {pid} holds lanes {lanes}"
        assert not lanes & theirs, f"worker {pid} holds another worker's lane"
        theirs |= lanes
        assert eventfd_count(pid) == 2, f"worker {pid}: not just its own and the front-end's"
        # The doorbell is mapped, its fd closed (it came with the Fork request).
        assert fds_to(pid, DOORBELL) == {} and mapped(pid, "fastinvoke-doorbell") == {bell}
    assert theirs == ours
    for pid in templates:
        assert lane_fds(pid) == {}, f"template {pid} keeps lanes"
        assert fds_to(pid, DOORBELL) == {}, f"template {pid} keeps the doorbell"
    gc.collect()  # a Link no longer referenced unmaps its lanes when it is freed
    assert mapped_lanes() == ours
    return workers


def test_no_lane_outlives_its_worker(make_invoker: MakeInvoker, make_function: MakeFunction,
                                     tmp_path: Path) -> None:
    """Workers forked, grown by big messages, crashed, killed while idle and recycled, over
    several rounds: each time the front-end's lane memfds (and their mappings, and the
    workers' eventfds) come back to what the live workers need: another function's warm
    workers, which keep theirs.  After close none is left."""
    gc.collect()
    assert lane_fds() == {} and mapped_lanes() == set(), "lanes left by an earlier test"
    eventfds_before = eventfd_count()
    invoker = make_invoker()
    own_eventfds = eventfd_count()  # the Invoker's own, before any worker
    keep = make_function("hop.handler", invoker=invoker, timeout_s=60)
    churn = make_function("hop.handler", invoker=invoker, timeout_s=60)

    def fork_held(name: str, count: int) -> set[int]:
        """Run ``count`` invocations of ``name`` at once: ``count`` workers."""
        with holding() as holder, ThreadPoolExecutor(count) as threads:
            futures = [threads.submit(invoker.invoke, name, {"id": str(i), "hold": holder.path})
                       for i in range(count)]
            for hello in holder.wait_for(count):
                holder.release(hello["id"], None)
            return {answer(future.result(30))["pid"] for future in futures}

    kept = fork_held(keep, 2)
    assert len(kept) == 2
    keep_template = parent_of(next(iter(kept)))
    assert kept <= _check_lanes(own_eventfds)

    def churn_workers() -> set[int]:
        return {pid for pid in pool_processes()[1] if parent_of(pid) != keep_template}

    for round_, count in enumerate((3, 5, 2)):
        assert len(fork_held(churn, count)) == count
        assert len(churn_workers() & _check_lanes(own_eventfds)) >= count
        big = invoker.invoke(churn, {"id": "big", "echo": "e" * 2_000_000})  # both lanes grow
        assert answer(big)["echo"] == "e" * 2_000_000
        assert_exit_error(invoker.invoke(churn, {"id": "crash", "die": "kill"}), "signal: killed")
        idle = answer(invoker.invoke(churn, {"id": "idle"}))["pid"]
        os.kill(idle, signal.SIGKILL)
        answer(invoker.invoke(churn, {"id": f"after-kill-{round_}"}))
        # Recycle until no worker of churn is left (one still starting is recycled once
        # it is idle; nothing forks workers while no invocation comes).
        wait_until(lambda: invoker.recycle(churn) >= 0 and not churn_workers(), timeout=20,
                   message=lambda: f"churn's workers {churn_workers()} are not recycled")
        live = _check_lanes(own_eventfds)
        assert kept <= live and {parent_of(pid) for pid in live} == {keep_template}
    assert answer(invoker.invoke(keep, {"id": "still-warm"}))["pid"] in kept
    invoker.close()
    assert lane_fds() == {}
    assert eventfd_count() == eventfds_before
    gc.collect()
    assert mapped_lanes() == set()


def test_close_releases_the_doorbell(make_invoker: MakeInvoker,
                                     make_function: MakeFunction) -> None:
    """After ``close`` the front-end holds no fd of the hop: no lane, no eventfd and no
    doorbell, even while the application keeps the closed Invoker object."""
    before = fds_to("self", DOORBELL)
    eventfds = eventfd_count()
    invoker = make_invoker()
    name = make_function("hop.handler", invoker=invoker)
    answer(invoker.invoke(name, {"id": "one"}))
    assert len(fds_to("self", DOORBELL)) == len(before) + 1
    invoker.close()  # the fixture keeps the object, as an application may
    assert lane_fds() == {}
    assert fds_to("self", DOORBELL) == before
    assert eventfd_count() == eventfds


# -- wake-ups: a reply never waits unnoticed ------------------------------------------------------


def _task_stat(path: str) -> tuple[str, str]:
    """(state, wchan) of a task from its /proc directory."""
    with open(f"{path}/stat", "rb") as file:
        text = file.read()
    with open(f"{path}/wchan") as file:
        return text[text.rindex(b")") + 2:].split()[0].decode(), file.read()


def _asleep_on_its_eventfd(pid: int) -> bool:
    """Whether ``pid`` sleeps in a system call on one of its eventfds (a worker in its
    recv: done with its last reply, wake-up included)."""
    try:
        state, _ = _task_stat(f"/proc/{pid}")
        with open(f"/proc/{pid}/syscall") as file:
            fields = file.read().split()
        if state != "S" or len(fields) < 2 or fields[0] == "running":
            return False
        return os.readlink(f"/proc/{pid}/fd/{int(fields[1], 16)}") == "anon_inode:[eventfd]"
    except (OSError, ValueError):
        return False


def test_a_lone_awaited_invocation_is_never_left_unnoticed(
        make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    """One asyncio caller awaits ainvoke after ainvoke while other threads of the
    application compute (the loop's thread may lose the GIL at any point, even between
    sending a request and starting to watch for its reply): no reply may ever wait in its
    lane unnoticed.

    Unnoticed is a state seen in /proc, not a duration: a message is published in one of
    the worker's lanes and not taken, the worker sleeps in its recv on its eventfd (so it
    is done with its reply, the reply's wake-up included), and the loop's thread sleeps in
    epoll_wait.  Nothing then wakes either end but the supervisor's periodic look (up to
    a second later): a lost wake-up.  The state must hold in two samples in a row, so a
    wake-up still on its way is not mistaken for a lost one.  (Before d18527a, a reply
    published before the loop raised the doorbell was found so in a few calls.)"""
    if not os.path.exists(f"/proc/{os.getpid()}/syscall"):
        pytest.skip("needs /proc/<pid>/syscall")
    invoker = make_invoker(max_workers=1)
    name = make_function("hop.handler", invoker=invoker)
    worker = answer(invoker.invoke(name, {"id": "warm"}))["pid"]
    loop_tid = threading.get_native_id()  # asyncio.run below runs the loop in this thread
    finished = threading.Event()
    seen: list[str] = []

    def unnoticed() -> bool:
        state, wchan = _task_stat(f"/proc/self/task/{loop_tid}")
        return (state == "S" and "epoll" in wchan and _message_waits_in_lane(worker)
                and _asleep_on_its_eventfd(worker))

    def watchdog() -> None:
        while not finished.is_set() and not seen:
            if unnoticed() and unnoticed():
                seen.append(f"lanes (seq, taken, capacity) {lane_headers(worker)}: a message "
                            "waits untaken while the worker and the loop both sleep")
            finished.wait(0.0005)  # the sampling period of this probe

    def compute() -> None:
        n = 0
        while not finished.is_set():
            n += 1

    async def calls() -> int:
        count = 0
        for i in range(200):
            if seen:
                break
            got = answer(await invoker.ainvoke(name, {"id": f"a{i}"}))
            assert (got["id"], got["pid"]) == (f"a{i}", worker)
            count += 1
        return count

    helpers = [threading.Thread(target=watchdog), threading.Thread(target=compute)]
    try:
        for thread in helpers:
            thread.start()
        done = asyncio.run(calls())
    finally:
        finished.set()
        for thread in helpers:
            thread.join()
    assert not seen, f"a lost wake-up after {done} answered invocations: {seen[0]}"
