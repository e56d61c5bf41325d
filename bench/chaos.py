"""python -m bench chaos --seconds N: a chaos soak of ``fastinvoke serve``.

A real ``fastinvoke serve`` (a subprocess on a free port, with a private state dir)
serves four functions of ``functions/chaos_*.py``: one adds, one sleeps (past its 1 s
timeout when asked), one allocates (past its 128 MB when asked), one raises.  For N
seconds, sync clients (boto3, one client per thread) call them synchronously and event
clients send Event invocations, each picking a function and what to ask of it at random
(``MODES``), while a chaos thread SIGKILLs a random worker or template of the server at
random intervals.  Then the load stops, the Event queue is left to settle, the server is
stopped with SIGTERM and what it left behind is looked for.

Every request is accounted for:

- synchronous calls: answered (200 ok, checked; 200 with a function error, by errorType;
  HTTP errors, by status and type), hung (no answer within the function's timeout +
  ``MARGIN_S``), dropped (the connection broke: no Lambda-shaped answer at all);
- Event invocations: each carries a unique id, which the handler prints as it starts
  (``chaos_record.py``; read back from the log store with ``fastinvoke logs`` after the
  stop: a sandboxed function cannot write the host's files), and each function's
  on-success and on-failure destinations (set with PutFunctionEventInvokeConfig, 2
  retries as Lambda's default) are JSON-lines files.  An accepted event ends as a Success
  or RetriesExhausted record, or is still in the durable queue after the stop (a retry
  waiting its 1 or 2 minutes, as Lambda's: ``events.db`` is read once the server has
  stopped).  *Lost*: none of these, and it never ran.  *Stalled*: still queued, never
  started, when the queue had ``DRAIN_S`` to settle.  *Duplicated*: it ran more often
  than the server counted attempts (``approximateInvokeCount``), twice sooner than a
  retry's delay, or has two records: a retry after a failure is not a duplicate, a run
  again after a success is.
- the server's own counters (``GET /metrics``, once the queue settled): invocations per
  function may not exceed those made (sync answers, and calls that may have run, plus
  the Event attempts the server counted), and no concurrency gauge may be below 0: an
  invocation completed twice shows in both.
- after the stop: leaked processes (any process seen below the server, same pid and start
  time, still alive; any process whose cmdline names the state dir), cgroups (directories
  ``fastinvoke-<server pid>[.N]`` under /sys/fs/cgroup, as ``fastinvoke/pool/cgroups.py``
  names a run's groups), mounts (``/proc/self/mountinfo`` lines naming the state dir) and
  this process's fds (counted before the server starts and after everything is closed).

Waiting is by signal where one exists (the server's ready line, its exit, pidfds of
leftover processes); the Event queue's settling is polled (its SQLite file, every
``POLL_S``, up to ``DRAIN_S``), as are the intervals of the chaos and of the event clients
(random pacing, not synchronisation).  A stop that takes longer than the longest
timeout + ``MARGIN_S`` counts as a hang (nothing runs longer once the load stopped).
Exit status 1 if a target (0 hung, dropped, wrong, lost, duplicated, over-counted or
leaked) is missed.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import os
import random
import re
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import proctree
from ._report import _revision

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = Path(__file__).resolve().parent / "functions"
MARGIN_S = 10.0  # an answer later than the function's timeout + this is a hang
DRAIN_S = 60.0  # most the Event queue gets to settle once the load stops
STOP_S = 45.0  # serve's shutdown grace (30 s) + a margin
READY_S = 60.0  # most the server may take to print its ready line
EXIT_GRACE_S = 5.0  # for processes killed by their parent's death to finish exiting
# fastinvoke retries a failed event after 60 s, then 120 s (Lambda: about 1 and 2 minutes):
# two runs of one event closer together than this are not a retry.
RETRY_GAP_S = 59.0
POLL_S = 0.05
KILL_INTERVAL_S = 0.5  # the chaos thread's mean interval between kills
TEMPLATE_SHARE = 0.2  # of the kills, the share aimed at templates
EVENT_INTERVAL_S = 0.1  # each event client's mean interval between Event invocations
TEMPLATE_MODULE = "fastinvoke.runtime.template"  # templates' (and so workers') cmdline


@dataclass(frozen=True)
class Function:
    name: str
    handler: str
    memory_mb: int
    timeout_s: int


FUNCTIONS = {f.name: f for f in (
    Function("chaos-add", "chaos_add.lambda_handler", 128, 3),
    Function("chaos-sleep", "chaos_sleep.lambda_handler", 128, 1),
    Function("chaos-oom", "chaos_oom.lambda_handler", 128, 3),
    Function("chaos-raise", "chaos_raise.lambda_handler", 128, 3),
)}
# Once the load stops nothing runs longer than this: a longer stop hangs.
STOP_LIMIT_S = max(f.timeout_s for f in FUNCTIONS.values()) + MARGIN_S


@dataclass(frozen=True)
class Mode:
    """What a request asks of a function; ``fails_as``: the errorType it must end with
    (None: it must answer right)."""

    function: str
    name: str
    weight: int
    fails_as: str | None = None


MODES = (
    Mode("chaos-add", "add", 8),
    Mode("chaos-sleep", "sleep", 2),
    Mode("chaos-sleep", "timeout", 1, "Sandbox.Timedout"),
    Mode("chaos-oom", "allocate", 1),
    Mode("chaos-oom", "oom", 1, "Runtime.ExitError"),  # "signal: killed", as Lambda says
    Mode("chaos-raise", "raise", 2, "ChaosError"),
)
_WEIGHTS = [mode.weight for mode in MODES]


def payload(mode: Mode, rng: random.Random) -> tuple[dict[str, Any], Any]:
    """The event for ``mode`` and the answer it must get (when it must not fail)."""
    function = FUNCTIONS[mode.function]
    if mode.name == "add":
        a, b = rng.randrange(10**6), rng.randrange(10**6)
        return {"value1": a, "value2": b}, a + b
    if mode.name in ("sleep", "timeout"):
        return {"sleep_s": 0.05 if mode.name == "sleep" else function.timeout_s * 5}, "slept"
    if mode.name in ("allocate", "oom"):
        mb = 16 if mode.name == "allocate" else function.memory_mb * 2
        return {"mb": mb}, mb
    return {}, None


class Tally:
    """Counters shared by the load threads (a key is a tuple of labels), and the slowest
    answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.slowest_s = 0.0

    def add(self, *key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def answered_in(self, seconds: float) -> None:
        with self._lock:
            self.slowest_s = max(self.slowest_s, seconds)


@dataclass
class Load:
    """What the load and chaos threads share."""

    port: int
    server_pid: int
    stop: threading.Event = field(default_factory=threading.Event)
    tally: Tally = field(default_factory=Tally)
    # Written by several threads: one item at a time, atomic under the GIL.
    accepted: dict[str, Mode] = field(default_factory=dict)  # event id -> what it asked
    uncertain: set[str] = field(default_factory=set)  # no answer: accepted or not, unknown
    seen: dict[int, int] = field(default_factory=dict)  # pid below the server -> start time
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def new_id(self) -> str:
        return f"e{next(self._ids)}"


# -- the server --------------------------------------------------------------------------


def template() -> dict[str, Any]:
    """A SAM template of ``FUNCTIONS``, their code ``functions/``."""
    runtime = f"python3.{sys.version_info.minor}"
    return {"Resources": {f.name: {"Type": "AWS::Serverless::Function", "Properties": {
        "FunctionName": f.name, "Handler": f.handler, "CodeUri": str(FUNCTIONS_DIR),
        "MemorySize": f.memory_mb, "Timeout": f.timeout_s, "Runtime": runtime}}
        for f in FUNCTIONS.values()}}


@contextmanager
def serve(tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``fastinvoke serve`` on a free port until the block ends: the process and its port
    (from its ready line).  Killed if the block ends with it still running."""
    (tmp / "template.json").write_text(json.dumps(template()))
    command = [sys.executable, "-m", "fastinvoke", "serve", "--port", "0", "--state-dir",
               str(tmp / "state"), "--template", str(tmp / "template.json")]
    with open(tmp / "serve.err", "wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        yield process, _ready_port(process, tmp / "serve.err")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def _ready_port(process: subprocess.Popen[bytes], err: Path) -> int:
    if not select.select([process.stdout], [], [], READY_S)[0]:
        raise SystemExit(f"chaos: fastinvoke serve not ready in {READY_S:g} s")
    line = process.stdout.readline()
    match = re.match(rb"fastinvoke: serving .*:(\d+) ", line)
    if match is None:
        raise SystemExit(f"chaos: fastinvoke serve did not start: {line!r}\n"
                         f"{err.read_text(errors='replace')}")
    return int(match[1])


def client(port: int, read_timeout_s: float) -> Any:
    """A boto3 Lambda client of the server: no retries (each call is one request)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="chaos", aws_secret_access_key="chaos",
        config=Config(retries={"max_attempts": 0}, connect_timeout=MARGIN_S,
                      read_timeout=read_timeout_s, max_pool_connections=1))


def configure_events(lambda_client: Any, tmp: Path) -> None:
    """Each function's Event settings: Lambda's 2 retries, records to files of ``tmp``."""
    for name in FUNCTIONS:
        lambda_client.put_function_event_invoke_config(
            FunctionName=name, MaximumRetryAttempts=2, DestinationConfig={
                "OnSuccess": {"Destination": f"file://{tmp / 'success.jsonl'}"},
                "OnFailure": {"Destination": f"file://{tmp / 'failure.jsonl'}"}})


# -- load ----------------------------------------------------------------------------------


def sync_client(load: Load, lambda_client: Any, rng: random.Random) -> None:
    """Synchronous Invokes, one after another, until the load stops."""
    while not load.stop.is_set():
        mode = rng.choices(MODES, _WEIGHTS)[0]
        event, answer = payload(mode, rng)
        load.tally.add("sync", "sent")
        outcome = _invoke(load, lambda_client, mode, event, answer)
        load.tally.add("sync", *outcome)
        if outcome[0] in ("hung", "dropped"):  # it may have run, or not
            load.tally.add("may have run", mode.function)
        elif outcome[0] != "http error":  # a 200 is one invocation; an HTTP error, none
            load.tally.add("ran", mode.function)


def _invoke(load: Load, lambda_client: Any, mode: Mode, event: dict[str, Any],
            answer: Any) -> tuple[str, ...]:
    from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

    started = time.monotonic()
    try:
        response = lambda_client.invoke(FunctionName=mode.function,
                                        Payload=json.dumps(event).encode())
        body = response["Payload"].read()
    except ReadTimeoutError:
        return ("hung",)
    except ClientError as exc:
        return ("http error", _http_error(exc))
    except (BotoCoreError, OSError) as exc:
        return ("dropped", type(exc).__name__)
    elapsed = time.monotonic() - started
    load.tally.answered_in(elapsed)
    if elapsed > FUNCTIONS[mode.function].timeout_s + MARGIN_S:
        return ("hung",)  # answered, but too late to count as an answer
    if "FunctionError" in response:
        error = _error_type(body)
        asked = "(asked for)" if error == mode.fails_as else "(not asked for)"
        return ("function error", error, asked)
    if mode.fails_as is not None or _decoded(body) != answer:
        return ("wrong", f"{mode.name} answered {body[:80]!r}")
    return ("ok",)


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body  # not JSON: never the right answer


def _http_error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return f"{status} {error.get('Code', '?')}"


def _error_type(body: bytes) -> str:
    try:
        return str(json.loads(body).get("errorType", "?"))
    except (ValueError, AttributeError):
        return "? (not an error document)"


def event_client(load: Load, lambda_client: Any, rng: random.Random) -> None:
    """Event invocations at random intervals (mean ``EVENT_INTERVAL_S``), each with a
    unique id, until the load stops."""
    from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

    while not load.stop.wait(rng.expovariate(1 / EVENT_INTERVAL_S)):
        mode = rng.choices(MODES, _WEIGHTS)[0]
        event, _ = payload(mode, rng)
        event["id"] = event_id = load.new_id()
        load.tally.add("event", "sent")
        try:
            response = lambda_client.invoke(FunctionName=mode.function, InvocationType="Event",
                                            Payload=json.dumps(event).encode())
        except ReadTimeoutError:
            load.uncertain.add(event_id)
            load.tally.add("event", "hung")
            continue
        except ClientError as exc:
            load.tally.add("event", "http error", _http_error(exc))
            continue
        except (BotoCoreError, OSError) as exc:
            load.uncertain.add(event_id)
            load.tally.add("event", "dropped", type(exc).__name__)
            continue
        if response["StatusCode"] == 202:
            load.accepted[event_id] = mode
            load.tally.add("event", "accepted")
        else:
            load.tally.add("event", "wrong", f"status {response['StatusCode']}")


# -- chaos ---------------------------------------------------------------------------------


def chaos(load: Load, rng: random.Random) -> None:
    """SIGKILL a worker (or, one time in five, a template) of the server at random
    intervals (mean ``KILL_INTERVAL_S``) until the load stops."""
    while not load.stop.wait(rng.expovariate(1 / KILL_INTERVAL_S)):
        tree = below(load)
        templates = [pid for pid, depth in tree.items() if depth == 1]
        workers = [pid for pid, depth in tree.items() if depth >= 2]
        kind, pool = (("template", templates) if not workers or rng.random() < TEMPLATE_SHARE
                      else ("worker", workers))
        if pool and kill(rng.choice(pool), load.server_pid):
            load.tally.add("chaos", f"{kind}s SIGKILLed")


def below(load: Load) -> dict[int, int]:
    """The function processes below the server (pid -> depth: 1 template, 2 worker),
    each remembered with its start time for the leak check."""
    tree = {pid: depth for pid, depth in proctree.depths(load.server_pid).items()
            if depth >= 1 and TEMPLATE_MODULE in _cmdline(pid)}
    for pid in tree:
        if (started := _start_time(pid)) is not None:
            load.seen.setdefault(pid, started)
    return tree


def kill(pid: int, server_pid: int) -> bool:
    """SIGKILL ``pid`` through a pidfd, once it is checked (through that pidfd's process)
    to be a function process below the server: a pid reused meanwhile is never hit."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if server_pid not in _ancestors(pid) or TEMPLATE_MODULE not in _cmdline(pid):
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def _ancestors(pid: int) -> list[int]:
    found = []
    while (parent := _stat_field(pid, 1)) not in (None, 0):
        found.append(pid := parent)
    return found


def _stat_field(pid: int, index: int) -> int | None:
    """Field ``index`` after the command name of /proc/PID/stat (1: ppid, 19: start
    time); None for a process gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rpartition(b")")[2].split()[index])
    except (OSError, IndexError, ValueError):
        return None


def _start_time(pid: int) -> int | None:
    return _stat_field(pid, 19)


def _cmdline(pid: int) -> str:  # tests/ has its twin: bench and tests import neither
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# -- settling and stopping -----------------------------------------------------------------


def drain(db_path: Path) -> float:
    """Poll the Event queue until nothing in it can run now (everything done, or waiting
    for a retry's delay), at most ``DRAIN_S``; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_S and _runnable(db_path):
        time.sleep(POLL_S)  # polling a file with a deadline: the queue has no public signal
    return time.monotonic() - started


def _runnable(db_path: Path) -> int:
    """Events claimed for an attempt, queued, or whose retry is due (``events.db``'s
    schema: fastinvoke/events/store.py)."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT COUNT(*) FROM events WHERE claimed = 1 OR due_ms <= ?",
                          (time.time_ns() // 1_000_000,)).fetchone()[0]


_METER = re.compile(r'(fastinvoke_invocations_total|fastinvoke_concurrent_executions)'
                    r'\{function="([^"]+)"\} (\S+)')


def meters(port: int) -> dict[str, dict[str, float]]:
    """The server's invocation counters and concurrency gauges (``GET /metrics``), by
    metric and function."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=MARGIN_S)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    found: dict[str, dict[str, float]] = {}
    for match in map(_METER.fullmatch, text.splitlines()):
        if match:
            found.setdefault(match[1], {})[match[2]] = float(match[3])
    return found


def stop(process: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    """SIGTERM, then wait up to ``STOP_S``: its exit status (None: it did not stop, and was
    SIGKILLed) and how long the stop took."""
    started = time.monotonic()
    process.terminate()
    try:
        status: int | None = process.wait(STOP_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        status = None
    return status, time.monotonic() - started


# -- accounting ----------------------------------------------------------------------------


@dataclass
class Facts:
    """What the Event invocations left: runs per id, records, the queue after the stop."""

    runs: dict[str, list[float]]  # id -> the start time of each run
    request_ids: dict[str, set[str]]
    records: dict[str, list[tuple[str, int]]]  # id -> [(condition, approximateInvokeCount)]
    left: dict[str, tuple[int, int]]  # id -> (attempts, claimed), still queued after the stop


def facts(tmp: Path) -> Facts:
    runs: dict[str, list[float]] = {}
    request_ids: dict[str, set[str]] = {}
    for line in run_lines(tmp / "state"):
        event_id, request_id, started = line.split()[1:]
        runs.setdefault(event_id, []).append(float(started))
        request_ids.setdefault(event_id, set()).add(request_id)
    records: dict[str, list[tuple[str, int]]] = {}
    for path in (tmp / "success.jsonl", tmp / "failure.jsonl"):
        for line in path.read_text().splitlines() if path.exists() else []:
            record = json.loads(line)
            context = record["requestContext"]
            records.setdefault(record["requestPayload"]["id"], []).append(
                (context["condition"], context["approximateInvokeCount"]))
    left = {}
    db_path = tmp / "state" / "events.db"
    if db_path.exists():
        with closing(sqlite3.connect(db_path)) as db:
            for body, attempts, claimed in db.execute(
                    "SELECT payload, attempts, claimed FROM events"):
                left[json.loads(body)["id"]] = (attempts, claimed)
    return Facts(runs, request_ids, records, left)


def run_lines(state_dir: Path) -> list[str]:
    """The ``CHAOS-RUN`` lines the functions printed, from the stopped server's log store
    (``fastinvoke logs``; a function that never ran has no log group: no lines)."""
    lines = []
    for name in FUNCTIONS:
        done = subprocess.run(
            [sys.executable, "-m", "fastinvoke", "logs", name, "--state-dir", str(state_dir)],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
            text=True, timeout=READY_S)
        lines += [line for line in done.stdout.splitlines() if line.startswith("CHAOS-RUN ")]
    return lines


def account(load: Load, found: Facts) -> tuple[Counter[str], Counter[str]]:
    """Each accepted event's outcome (one of them) and its flags (retried, duplicated,
    a new request id on a retry), runs of events never accepted; and the attempts the
    server counted, by function."""
    counts: Counter[str] = Counter()
    attempts_by_function: Counter[str] = Counter()
    for event_id, mode in load.accepted.items():
        outcome, attempts = _outcome(found, event_id)
        runs = sorted(found.runs.get(event_id, []))
        counts[outcome] += 1
        counts["ran"] += bool(runs)
        attempts_by_function[mode.function] += attempts
        if attempts > 1:
            counts["retried"] += 1
            counts["retry attempts"] += attempts - 1
        counts["duplicated"] += (
            len(found.records.get(event_id, [])) > 1 or len(runs) > attempts
            or any(later - earlier < RETRY_GAP_S for earlier, later in itertools.pairwise(runs)))
        counts["new request id on a retry"] += len(found.request_ids.get(event_id, ())) > 1
        counts["claimed at stop (would run again)"] += found.left.get(event_id, (0, 0))[1]
    known = load.accepted.keys() | load.uncertain
    counts["ran, never accepted"] = sum(1 for event_id in found.runs if event_id not in known)
    return counts, attempts_by_function


def _outcome(found: Facts, event_id: str) -> tuple[str, int]:
    """Where an accepted event ended, and the attempts the server counted."""
    if records := found.records.get(event_id):
        condition, attempts = records[0]
        return ("succeeded" if condition == "Success" else f"failed for good ({condition})",
                attempts)
    if event_id in found.left:
        attempts = found.left[event_id][0]
        return ("retry pending at stop" if attempts else "stalled", attempts)
    if runs := found.runs.get(event_id):
        return "ran, no record", len(runs)
    return "lost", 0


def leaked_processes(load: Load, state_dir: Path) -> list[str]:
    """Processes seen below the server (same pid and start time) or naming the state dir
    in their cmdline, still alive ``EXIT_GRACE_S`` after the server's exit."""
    suspects = {pid for pid, started in load.seen.items() if _start_time(pid) == started}
    suspects |= {int(pid) for pid in os.listdir("/proc")
                 if pid.isdigit() and str(state_dir) in _cmdline(int(pid))}
    deadline = time.monotonic() + EXIT_GRACE_S
    alive = []
    for pid in sorted(suspects):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:  # a pidfd turns readable when its process exits
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                alive.append(f"{pid}: {_cmdline(pid)[:120]}")
        finally:
            os.close(fd)
    return alive


def leaked_cgroups(server_pid: int) -> list[str]:
    """Groups named for the server's run, anywhere under /sys/fs/cgroup."""
    run_group = re.compile(rf"fastinvoke-{server_pid}(\.[\w-]+)?")
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(top, d) for d in dirs if run_group.fullmatch(d)]
        dirs[:] = [d for d in dirs if not d.startswith("fastinvoke-")]
    return found


def leaked_mounts(state_dir: Path) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.strip() for line in mountinfo if str(state_dir) in line]


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- the run -------------------------------------------------------------------------------


@dataclass
class Result:
    seconds: float
    counts: Counter[tuple[str, ...]]
    events: Counter[str]
    attempts: Counter[str]  # Event attempts the server counted, by function
    meters: dict[str, dict[str, float]]  # GET /metrics once the queue settled
    slowest_s: float
    drain_s: float
    exit_status: int | None
    stop_s: float
    processes: list[str]
    cgroups: list[str]
    mounts: list[str]
    fds: tuple[int, int]
    server_log: list[str]
    sync_clients: int


def soak(seconds: float, sync_clients: int, event_clients: int, seed: int) -> Result:
    """The whole soak: serve, load with chaos, settle, stop, account; this process's fds
    counted before anything starts and after everything (the temporary dir too) is gone."""
    fds_before = fd_count()
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as name:
        result = _soak(Path(name), seconds, sync_clients, event_clients, random.Random(seed))
    result.fds = (fds_before, fd_count())
    return result


def _soak(tmp: Path, seconds: float, sync_clients: int, event_clients: int,
          rng: random.Random) -> Result:
    with serve(tmp) as (process, port):
        load = Load(port, process.pid)
        timeout = max(f.timeout_s for f in FUNCTIONS.values()) + MARGIN_S
        sync = [client(port, timeout) for _ in range(sync_clients)]
        events = [client(port, MARGIN_S) for _ in range(event_clients)]
        configure_events((sync + events)[0], tmp)
        drive(load, sync, events, rng, seconds)
        for lambda_client in sync + events:
            lambda_client.close()
        below(load)  # the last look at the tree before the stop
        drain_s = drain(tmp / "state" / "events.db")
        counters = meters(port)
        exit_status, stop_s = stop(process)
    events, attempts = account(load, facts(tmp))
    return Result(
        seconds, load.tally.counts, events, attempts, counters, load.tally.slowest_s,
        drain_s, exit_status, stop_s, leaked_processes(load, tmp / "state"),
        leaked_cgroups(process.pid), leaked_mounts(tmp), (0, 0), _server_log(tmp / "serve.err"),
        sync_clients)


def drive(load: Load, sync: list[Any], events: list[Any], rng: random.Random,
          seconds: float) -> None:
    """Run the load and the chaos for ``seconds``; return once every thread has ended
    (also on an error or Ctrl-C here: the threads are told to stop, then joined)."""
    threads = [threading.Thread(target=sync_client, args=(load, c, _fork(rng))) for c in sync]
    threads += [threading.Thread(target=event_client, args=(load, c, _fork(rng)))
                for c in events]
    threads.append(threading.Thread(target=chaos, args=(load, _fork(rng))))
    try:
        for thread in threads:
            thread.start()
        load.stop.wait(seconds)  # the soak's length, not a synchronisation
    finally:
        load.stop.set()
        for thread in threads:
            if thread.ident is not None:
                thread.join()


def _fork(rng: random.Random) -> random.Random:
    """A generator of its own for a thread, seeded from ``rng``: reproducible picks."""
    return random.Random(rng.getrandbits(64))


def _server_log(err: Path) -> list[str]:
    """What the server wrote to stderr beyond its last line ("stopped"): a bug's first
    clue."""
    return [line for line in err.read_text(errors="replace").splitlines()
            if line != "fastinvoke: stopped"]


# -- the report ----------------------------------------------------------------------------


def made(result: Result, function: str) -> int:
    """Invocations of ``function`` the soak knows of: sync calls answered (and those that
    may have run unanswered), Event attempts the server counted (read after the stop:
    never fewer than when the counters were read)."""
    counts = result.counts
    return counts["ran", function] + counts["may have run", function] \
        + result.attempts[function]


def targets(result: Result) -> list[tuple[str, int]]:
    """Each target's figure; every target is 0."""
    sync = result.counts
    hung = sync["sync", "hung"] + sync["event", "hung"] + result.events["stalled"]
    # nothing runs longer than the longest timeout: a stop that takes longer hangs
    hung += result.exit_status is None or result.stop_s > STOP_LIMIT_S
    dropped = sum(n for key, n in sync.items() if key[1] == "dropped")
    wrong = sum(n for key, n in sync.items() if key[1] == "wrong")
    counted = result.meters.get("fastinvoke_invocations_total", {})
    running = result.meters.get("fastinvoke_concurrent_executions", {})
    # A kill fails what the killed process ran: at most one call per sync client.  More
    # unasked failures (or of another type) mean functions fail without the chaos.
    kills = sync["chaos", "workers SIGKILLed"] + sync["chaos", "templates SIGKILLed"]
    unasked = {key[2]: n for key, n in sync.items()
               if key[0] == "sync" and key[1] == "function error" and key[3] == "(not asked for)"}
    other = sum(n for error, n in unasked.items() if error != "Runtime.ExitError")
    beyond = max(0, unasked.get("Runtime.ExitError", 0) - kills * result.sync_clients)
    return [
        ("function errors not asked for, of a type no kill causes", other),
        ("unasked Runtime.ExitError beyond one per kill and client", beyond),
        ("hung: sync calls, Event acceptances, events stalled, the stop", hung),
        ("dropped: a connection broken, no answer", dropped),
        ("wrong answers", wrong),
        ("lost events: never ran nor queued, or ran with no record",
         result.events["lost"] + result.events["ran, no record"]),
        ("duplicated events: ran more than Lambda would run them",
         result.events["duplicated"] + result.events["ran, never accepted"]
         + result.events["claimed at stop (would run again)"]),
        ("invocations the server counted beyond those made",
         sum(max(0, round(n) - made(result, name)) for name, n in counted.items())),
        ("concurrent executions below 0 at rest", sum(round(-n) for n in running.values()
                                                       if n < 0)),
        ("leaked processes", len(result.processes)),
        ("leaked cgroups", len(result.cgroups)),
        ("leaked mounts", len(result.mounts)),
        ("leaked fds", result.fds[1] - result.fds[0]),
    ]


_SYNC_ORDER = ("sent", "ok", "function error", "http error", "hung", "dropped", "wrong")
_EVENT_ORDER = ("sent", "accepted", "http error", "hung", "dropped", "wrong")
_EVENT_OUTCOMES = (  # each accepted event has one of the first seven
    "succeeded", "failed for good (RetriesExhausted)", "retry pending at stop", "stalled",
    "lost", "ran, no record", "ran", "retried", "retry attempts", "duplicated",
    "ran, never accepted", "claimed at stop (would run again)", "new request id on a retry")


def render(result: Result, title: str) -> str:
    """The figures, one per line, then a line per target."""
    rows = [("== synchronous Invoke (boto3) ==", "")]
    rows += _grouped(result.counts, "sync", _SYNC_ORDER)
    rows += [("slowest answer", f"{result.slowest_s:.2f} s"), ("", ""),
             ("== Event invocations ==", "")]
    rows += _grouped(result.counts, "event", _EVENT_ORDER)
    outcomes = [*_EVENT_OUTCOMES, *sorted(result.events.keys() - set(_EVENT_OUTCOMES))]
    rows += [(f"accepted: {key}", f"{result.events[key]:,}") for key in outcomes]
    rows += [("queue settled in", f"{result.drain_s:.2f} s"), ("", ""),
             ("== the server's counters once the queue settled (GET /metrics) ==", "")]
    counted = result.meters.get("fastinvoke_invocations_total", {})
    running = result.meters.get("fastinvoke_concurrent_executions", {})
    for name in FUNCTIONS:
        rows += [(f"{name}: invocations counted / made",
                  f"{counted.get(name, math.nan):,.0f} / {made(result, name):,}"),
                 (f"{name}: concurrent executions", f"{running.get(name, math.nan):g}")]
    rows += [("", ""), ("== chaos ==", "")]
    rows += _grouped(result.counts, "chaos", ("workers SIGKILLed", "templates SIGKILLed"))
    rows += [("", ""), ("== after SIGTERM ==", ""),
             ("server exit status", "did not stop" if result.exit_status is None
              else str(result.exit_status)),
             ("stop took", f"{result.stop_s:.2f} s"),
             ("fds of this process, before / after", f"{result.fds[0]} / {result.fds[1]}")]
    rows += [(f"leaked: {item}", "") for item in
             result.processes + result.cgroups + result.mounts]
    width = max(len(label) for label, _ in rows)
    out = [title, ""] + [f"{label:<{width}}  {value:>8}".rstrip() for label, value in rows]
    out += ["", "== targets =="]
    out += [f"{name:<62} {figure:>6}   target 0   {'ok' if figure == 0 else 'MISSED'}"
            for name, figure in targets(result)]
    if result.server_log:
        out += ["", f"== the server's stderr ({len(result.server_log)} lines; the first 60) =="]
        out += result.server_log[:60]
    return "\n".join(out)


def _grouped(counts: Counter[tuple[str, ...]], kind: str,
             order: tuple[str, ...]) -> list[tuple[str, str]]:
    """``kind``'s counters, in ``order`` of their first label (others after), "sent" and
    "ok" shown even when 0."""
    keys = {key[1:] for key in counts if key[0] == kind} | {(k,) for k in order[:2]}

    def rank(key: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
        return (order.index(key[0]) if key[0] in order else len(order), key)

    return [(" ".join(key), f"{counts[(kind, *key)]:,}") for key in sorted(keys, key=rank)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chaos",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("--seconds", type=float, default=30, help="load time (default 30)")
    parser.add_argument("--sync-clients", type=int, default=6,
                        help="concurrent synchronous callers (default 6)")
    parser.add_argument("--event-clients", type=int, default=2,
                        help="Event senders, each about 10 a second (default 2)")
    parser.add_argument("--seed", type=int, help="seed of every random pick (default: random)")
    args = parser.parse_args(argv)
    seed = random.randrange(2**32) if args.seed is None else args.seed
    result = soak(args.seconds, args.sync_clients, args.event_clients, seed)
    title = (f"python -m bench chaos --seconds {args.seconds:g} --seed {seed}: "
             f"{args.sync_clients} sync clients, {args.event_clients} event clients, "
             f"source {_revision()}")
    print(render(result, title))
    return 1 if any(figure for _, figure in targets(result)) else 0


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        sys.exit(main())
