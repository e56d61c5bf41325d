"""Fixtures: Invokers that must leave nothing behind, and functions made from tests/functions."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import json
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    FUNCTIONS,
    MakeFunction,
    MakeInvoker,
    alive,
    descendants,
    describe,
    parent_of,
    wait_until,
)
from http_server import Server, serving
from sqs_server import CREDENTIALS, sqs_server

from fastinvoke import FunctionConfig, Invoker

# Ray's clients (Invokers of the tests, servers they start) reach the tests' cluster on
# loopback only with this (ray_cluster.py); Ray reads it when it is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


@pytest.fixture
def make_invoker() -> Iterator[MakeInvoker]:
    """A factory of Invokers.  After the test each is closed, and the test fails if a
    process it started survives (a zombie too: a child nobody waited for is a leak), if a
    child was dropped without being waited for, or if a private state dir remains."""
    before = descendants(os.getpid(), include_zombies=True)
    made: list[Invoker] = []
    settings: list[dict[str, Any]] = []
    unwaited: list[str] = []
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        # Popen.__del__ warns "subprocess N is still running" for a child never waited
        # for.  It may run in any thread at any time; keep it for this test's report
        # (pytest would report it in whichever test is running when it is collected).
        if isinstance(unraisable.exc_value, ResourceWarning) and UNWAITED.match(
                str(unraisable.exc_value)):
            unwaited.append(str(unraisable.exc_value))
        else:
            previous_hook(unraisable)

    def make(**kwargs: Any) -> Invoker:
        # Tests hand handlers gate files and notification sockets of this machine, which a
        # sandbox rightly hides: unsandboxed unless asked (test_sandbox covers the sandbox).
        kwargs.setdefault("sandbox", False)
        invoker = Invoker(**kwargs)
        made.append(invoker)
        settings.append(kwargs)
        return invoker

    sys.unraisablehook = hook
    try:
        yield make
        private_dirs = [invoker.state_dir for invoker, kwargs in zip(made, settings, strict=True)
                        if kwargs.get("state_dir") is None]
        while made:
            made.pop().close()
        leaked = descendants(os.getpid(), include_zombies=True) - before
        leaked_text = describe(leaked)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            gc.collect()  # Popens dropped by the Invokers warn now, in this test
        unwaited += [str(w.message) for w in caught if UNWAITED.match(str(w.message))]
    finally:
        sys.unraisablehook = previous_hook
    _reap_zombie_children(leaked)  # reported below; do not leave them to later tests
    assert not leaked, f"processes left after close(): {leaked_text} ({unwaited})"
    assert not unwaited, f"child processes never waited for: {unwaited}"
    for state_dir in private_dirs:
        assert not os.path.exists(state_dir), f"private state dir left: {state_dir}"


UNWAITED = re.compile(r"subprocess \d+ is still running")


def _reap_zombie_children(pids: set[int]) -> None:
    for pid in pids:
        if parent_of(pid) == os.getpid() and not alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


@pytest.fixture
def invoker(make_invoker: MakeInvoker) -> Invoker:
    """An Invoker with default settings and a private state dir, checked after the test."""
    return make_invoker()


@pytest.fixture
def make_function(request: pytest.FixtureRequest, tmp_path: Path) -> MakeFunction:
    """``make_function("module.function", **config)`` creates a function on the test's
    ``invoker`` (or on ``invoker=``) and returns its unique name.

    ``code`` defaults to tests/functions; ``source="..."`` writes the handler's module
    into a fresh directory first.  Other keywords go to ``FunctionConfig``.
    """
    numbers = itertools.count()

    def make(handler: str, *, invoker: Invoker | None = None, name: str | None = None,
             source: str | None = None, code: str = FUNCTIONS, **config: Any) -> str:
        if invoker is None:
            invoker = request.getfixturevalue("invoker")
        number = next(numbers)
        if name is None:
            name = re.sub(r"[^a-zA-Z0-9_-]", "-", handler)[:50] + f"-{number}"
        if source is not None:
            code_dir = tmp_path / f"code{number}"
            code_dir.mkdir()
            path = code_dir / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
            code = str(code_dir)
        invoker.create_function(FunctionConfig(name=name, handler=handler, code=code, **config))
        return name

    return make


_PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Make this process a child subreaper for the test: a process orphaned by its parent
    (a worker whose template died before it) is re-parented here instead of to init, so
    it stays visible as a descendant (alive or zombie) and cannot escape the leak checks.
    Adopted zombies are reaped afterwards."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        _reap_zombie_children(descendants(os.getpid(), include_zombies=True))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """The endpoint of a real moto server (SQS, S3, SNS...) for a module's tests: stopped
    after them, so later tests that count this process's children do not see it."""
    with sqs_server() as url:
        yield url


@pytest.fixture
def moto_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """What clients of the moto server sign with (any key, for a local server), for
    the servers a test starts too."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def lambda_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``fastinvoke serve`` (a subprocess) with the functions of ``http_server.HANDLERS``,
    shared by a test module.  It must stop cleanly on SIGTERM, leaving no process."""
    with serving(tmp_path_factory.mktemp("serve")) as server:
        yield server


@pytest.fixture(scope="module")
def client(lambda_server: Server) -> Iterator[Any]:
    """A boto3 Lambda client of ``lambda_server`` (no retries), shared by a test module.
    Tests read every Payload: an unread one keeps its connection out of the pool."""
    client = lambda_server.client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``fastinvoke serve`` with its Lambda API and a ZeroMQ endpoint (an ipc socket),
    shared by a test module; it must stop cleanly.  It has the functions of
    ``http_server.HANDLERS`` unless the module sets ``SERVE_TEMPLATE = False`` (its tests
    create their own)."""
    directory = tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))
    template = getattr(request.module, "SERVE_TEMPLATE", True)
    with serving(directory, "--zmq", f"ipc://{directory}/zmq", template=template) as server:
        yield server


class RayCluster:
    """The tests' Ray cluster (``tests/ray_cluster.py``), through its command pipe."""

    def __init__(self) -> None:
        # The script's parent exits at once: the script, and Ray's processes, are not
        # this process's descendants (see ray_cluster.py).
        self._starter = subprocess.Popen(
            [sys.executable, "-c", "import subprocess, sys; subprocess.Popen("
             f"[sys.executable, {str(Path(__file__).parent / 'ray_cluster.py')!r}])"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._starter.wait()
        ready = self._read()
        self.address: str = ready["address"]
        self.pid: int = ready["pid"]

    def add_node(self, cpus: int, memory: int) -> str:
        """Add a node; its Ray node id."""
        return self._ask(f"add {cpus} {memory}")["node_id"]

    def remove_node(self, node_id: str) -> None:
        self._ask(f"remove {node_id}")

    def processes(self) -> set[int]:
        return descendants(self.pid)

    def shutdown(self) -> None:
        self._starter.stdin.close()  # the script shuts the cluster down and exits
        self._starter.stdout.close()
        wait_until(lambda: not alive(self.pid), timeout=60)

    def _ask(self, command: str) -> dict[str, Any]:
        self._starter.stdin.write(command.encode() + b"\n")
        self._starter.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        line = self._starter.stdout.readline()
        if not line:
            raise RuntimeError("the tests' Ray cluster did not start: see its output above")
        return json.loads(line)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A real local Ray cluster of two nodes, on loopback only: a 2-CPU head with 512 MiB
    to reserve and a 2-CPU node with 6 GiB.  Started once, when a test first needs it."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[test]'")
    cluster = RayCluster()
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture
def make_cluster_invoker(ray_cluster: RayCluster) -> Iterator[MakeInvoker]:
    """Invokers on ``ray_cluster``.  After the test each is closed, and the test fails if
    a node process, a node agent or a worker of theirs survives on any node."""
    made: list[Invoker] = []

    def make(**kwargs: Any) -> Invoker:
        kwargs.setdefault("sandbox", False)  # as make_invoker's, and for the same reasons
        invoker = Invoker(ray_address=ray_cluster.address, **kwargs)
        made.append(invoker)
        return invoker

    before = own_runtime_processes()
    yield make
    while made:
        made.pop().close()

    def left() -> set[int]:
        return cluster_processes(ray_cluster) | (own_runtime_processes() - before)

    wait_until(lambda: not left(), timeout=30,
               message=lambda: f"left after close(): {describe(left())}")


def own_runtime_processes() -> set[int]:
    """The templates this process started (an Invoker's engine for its own Ray node) and
    their workers; not those of a server it started."""
    found = set()
    for pid in descendants(os.getpid(), include_zombies=True):
        if parent_of(pid) == os.getpid() and b"fastinvoke.runtime" in cmdline(pid):
            found |= {pid} | descendants(pid, include_zombies=True)
    return found


def cmdline(pid: int) -> bytes:
    """``pid``'s command line, NUL-separated (b"" once it has ended)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read()
    except OSError:
        return b""


def cluster_processes(cluster: RayCluster) -> set[int]:
    """fastinvoke's processes on the cluster's nodes: node processes and agents, and the
    templates and workers below a node process (Ray's own are not)."""
    found = set()
    for pid in cluster.processes():
        command = cmdline(pid)
        if b"fastinvoke.cluster.node" in command:
            found |= {pid} | descendants(pid)
        elif b"NodeAgent" in command:
            found.add(pid)
    return found
