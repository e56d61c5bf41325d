"""The sandbox's unprivileged mode, for real: a template-like process run as an unused uid
(the test process, root, stands in for the server's user) enters a user namespace owning
mount and PID namespaces (``enter_template`` without root), and an ``Invoker`` made by
such a process sandboxes its functions.  Skipped, saying why, where the kernel refuses
unprivileged user namespaces.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import FUNCTIONS, sandbox_layout_problem
from test_sandbox_mechanism import libc_call, outcome

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.pool.templates import Templates
from fastinvoke.runtime import sandbox

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="plays an unprivileged server's user by leaving root"),
    pytest.mark.skipif(sandbox_layout_problem() is not None,
                       reason=f"not sandboxable here: {sandbox_layout_problem()}"),
]

UID = 61071  # unused on the host
CLONE_NEWNS = 0x20000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
libc = ctypes.CDLL(None, use_errno=True)




def become_unprivileged() -> None:
    """In a child of the test: leave root for ``UID``.  The interpreter may live under a
    directory the uid cannot traverse (``/root``, mode 0700): in a mount namespace of the
    child's own, that directory is replaced by a world-searchable one holding only the
    interpreter's directories, as on a host where it is installed for every user."""
    tops = sorted({"/" + "/".join(p.split("/")[1:3])
                   for p in [*sandbox.interpreter_paths(), os.path.realpath(sys.executable)]
                   if p.startswith("/root/")})
    if tops:
        libc_call(libc.unshare(CLONE_NEWNS))
        libc_call(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))
        keep = tempfile.mkdtemp()
        libc_call(libc.mount(b"/root", keep.encode(), None, MS_BIND | MS_REC, None))
        libc_call(libc.mount(b"tmpfs", b"/root", b"tmpfs", 0, b"mode=0755"))
        for top in tops:
            os.mkdir(top)
            libc_call(libc.mount(f"{keep}{top[5:]}".encode(), top.encode(), None,
                                 MS_BIND | MS_REC, None))
    os.setgroups([])
    os.setgid(UID)
    os.setuid(UID)


@pytest.fixture
def host() -> Iterator[dict[str, Any]]:
    """The code directory and, outside it, a fake keys file the uid may read (only the
    sandbox keeps it out), in a directory the uid owns."""
    top = tempfile.mkdtemp(prefix="fastinvoke-unprivileged-")
    os.chmod(top, 0o755)
    code = Path(top, "code")
    code.mkdir(mode=0o755)
    (code / "app.py").write_text("ANSWER = 42\n")
    keys = Path(top, "keys.json")
    keys.write_text('{"AKIDEXAMPLE": "wJalrXUtnFEMI"}')
    state = Path(top, "state")
    state.mkdir()
    for path in (top, code, code / "app.py", keys, state):
        os.chown(path, UID, UID)
    try:
        yield {"server": os.getpid(), "code": str(code), "keys": str(keys), "state": str(state)}
    finally:
        shutil.rmtree(top)


def run_child(body: Callable[[Callable[[dict[str, Any]], None]], None]
              ) -> Iterator[dict[str, Any]]:
    """Fork a child that becomes unprivileged and runs ``body(report)``; yield each report
    as it comes (``report`` writes one JSON line).  Reports {"skip": why} skip the test."""
    report_r, report_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(report_r)

        def report(value: dict[str, Any]) -> None:
            os.write(report_w, json.dumps(value).encode() + b"\n")

        try:
            become_unprivileged()
            body(report)
        except sandbox.SandboxUnavailable as exc:
            report({"skip": exc.reason})
        except BaseException:
            report({"error": traceback.format_exc()})
        os._exit(0)
    os.close(report_w)
    try:
        with os.fdopen(report_r) as lines:
            for line in lines:
                value = json.loads(line)
                if "skip" in value:
                    pytest.skip(value["skip"])
                assert "error" not in value, value["error"]
                yield {**value, "child": child}
    finally:
        os.waitpid(child, 0)


def test_the_template_sees_only_its_namespace_and_its_workers_are_the_server_s_to_kill(
        host) -> None:
    """The template is PID 1 of its namespace; the worker pids it reports are translated
    to the ones the server signals; a worker cannot end its template, can end itself."""

    def template(report: Callable[[dict[str, Any]], None]) -> None:
        started = time.perf_counter()
        sandbox.enter_template(host["code"], UID, pdeathsig=signal.SIGKILL,
                               denied=[host["state"], host["keys"]])
        entered_ms = (time.perf_counter() - started) * 1000
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as the template's _confine does
        status = dict(line.split(":\t", 1) for line in
                      Path("/proc/self/status").read_text().splitlines() if ":\t" in line)
        tmp = sandbox.probe_workers()
        Path("/tmp/from-init").write_text("init")
        seen: dict[str, Any] = {
            "pid": os.getpid(), "ppid": os.getppid(), "uid": [os.getuid(), os.getgid()],
            "caps": sorted({v.strip() for k, v in status.items() if k.startswith("Cap")}),
            "no_new_privs": status["NoNewPrivs"].strip(), "cwd": os.getcwd(),
            "/proc": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "kill the server": outcome(lambda: os.kill(host["server"], 0)),
            "keys": outcome(lambda: Path(host["keys"]).read_text()),
            "state": outcome(lambda: os.listdir(host["state"])),
            "write /var/task": outcome(lambda: Path("/var/task/new.py").touch(exist_ok=False)),
            "code": Path("/var/task/app.py").read_text(),
            "tmp overlay": tmp.overlay, "entered_ms": entered_ms,
        }
        hold_r, hold_w = os.pipe()
        pids = []
        for index in range(2):
            line_r, line_w = os.pipe()
            pid = sandbox.fork_environment(16, signal.SIGKILL, tmp_overlay=tmp.overlay)
            if pid == 0:  # a worker: its /tmp, its view, its attempts on the template
                os.close(hold_w)
                Path(f"/tmp/worker-{index}").write_text("mine")
                mine = {
                    "pid": os.getpid(), "ppid": os.getppid(), "tmp": sorted(os.listdir("/tmp")),
                    "/proc": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                    # no handler for these in the template: ignored from inside (PID 1)
                    "end the template": [outcome(lambda s=s: os.kill(1, s)) for s in
                                         (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)],
                }
                os.write(line_w, json.dumps(mine).encode())
                os.close(line_w)
                os.read(hold_r, 1)  # until the server (the test) kills it
                os._exit(0)
            os.close(line_w)
            seen[f"worker {index}"] = json.loads(os.read(line_r, 65536))
            os.close(line_r)
            pids.append(pid)
        report(seen)  # the test now kills worker 0 by the pid the server would use
        _, status_0 = os.waitpid(pids[0], 0)
        suicide = sandbox.fork_environment(16, signal.SIGKILL, tmp_overlay=tmp.overlay)
        if suicide == 0:
            os.kill(os.getpid(), signal.SIGKILL)  # a handler ending itself, as on Lambda
            os._exit(3)
        _, status_s = os.waitpid(suicide, 0)
        os.close(hold_w)
        _, status_1 = os.waitpid(pids[1], 0)
        report({"worker 0": os.waitstatus_to_exitcode(status_0),
                "itself": os.waitstatus_to_exitcode(status_s),
                "worker 1": os.waitstatus_to_exitcode(status_1),
                "template alive": True})

    reports = run_child(template)
    seen = next(reports)
    first, second = seen["worker 0"], seen["worker 1"]
    print(f"entering the unprivileged mode took {seen['entered_ms']:.2f} ms")
    assert (seen["pid"], seen["ppid"]) == (1, 0)
    assert seen["uid"] == [UID, UID]  # the server's uid, kept
    assert seen["caps"] == ["0000000000000000"]
    assert seen["no_new_privs"] == "1"
    assert seen["cwd"] == sandbox.TASK_ROOT
    assert seen["code"] == "ANSWER = 42\n"
    assert seen["/proc"] == [1]  # before its workers: nothing outside the namespace
    assert seen["kill the server"] == "ESRCH"
    assert seen["keys"] == seen["state"] == "ENOENT"
    assert seen["write /var/task"] == "EROFS"
    for index, worker in enumerate((first, second)):
        assert worker["ppid"] == 1
        assert worker["/proc"] == [worker["pid"]]  # hidepid: not even its template
        assert worker["end the template"] == ["allowed"] * 3  # sent, and ignored
        expected = [f"worker-{index}"] + (["from-init"] if seen["tmp overlay"] else [])
        assert worker["tmp"] == sorted(expected)  # private: not the sibling's file
    # What the server does at a deadline: translate the reported pid, and kill that one.
    stub = seen["child"]
    templates = SimpleNamespace(same_pids=False)
    host_pid = Templates.worker_pid(templates, SimpleNamespace(pid=stub), first["pid"])
    assert host_pid is not None and host_pid != first["pid"]
    nspid = Path(f"/proc/{host_pid}/status").read_text().split("NSpid:")[1].split("\n")[0]
    assert [int(p) for p in nspid.split()] == [host_pid, first["pid"]]
    assert Templates.worker_pid(templates, SimpleNamespace(pid=stub), 9999) is None
    os.kill(host_pid, signal.SIGKILL)
    ended = next(reports)
    assert ended == {"worker 0": -signal.SIGKILL, "itself": -signal.SIGKILL,
                     "worker 1": 0, "template alive": True, "child": stub}


def test_an_unprivileged_invoker_sandboxes_its_functions(host) -> None:
    """A real Invoker made by a process that is not root: its functions run as its uid in
    their own root, see no process outside, cannot read its keys; a worker past its
    deadline is killed by the pid the server translated."""

    def server(report: Callable[[dict[str, Any]], None]) -> None:
        warnings: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore
        logging.getLogger("fastinvoke").addHandler(handler)
        with Invoker(host["state"]) as invoker:
            invoker.create_function(FunctionConfig(
                name="attacker", handler="attacker.handler", code=FUNCTIONS))
            invoker.create_function(FunctionConfig(
                name="sleeper", handler="sleeper.handler", code=FUNCTIONS, timeout_s=1))

            def attempt(**event: Any) -> dict[str, Any]:
                return invoker.call("attacker", event)

            whoami = attempt(**{"try": "whoami"})
            refused = [w for w in warnings if "user namespaces are refused" in w]
            if refused:
                raise sandbox.SandboxUnavailable(refused[0])
            started = time.monotonic()
            timed_out = bytes(invoker.invoke("sleeper", {"seconds": 30}).payload).decode()
            report({
                "whoami": whoami, "warnings": warnings, "server": os.getpid(),
                "keys": attempt(**{"try": "read", "path": host["keys"]}),
                "state": attempt(**{"try": "listdir", "path": host["state"]}),
                "/proc": attempt(**{"try": "listdir", "path": "/proc"}),
                "kill the server": attempt(**{"try": "kill", "pid": os.getpid()}),
                "cwd": attempt(**{"try": "cwd"}),
                "timed out": [timed_out, time.monotonic() - started],
                "again": invoker.call("sleeper", {"seconds": 0}),
            })

    (seen,) = list(run_child(server))
    assert seen["whoami"] == {"ok": True, "value": {"uid": UID, "gid": UID}}
    assert not [w for w in seen["warnings"] if "isolated" in w], seen["warnings"]
    for name in ("keys", "state"):
        assert not seen[name]["ok"] and "FileNotFoundError" in seen[name]["error"], seen[name]
    pids = [int(p) for p in seen["/proc"]["value"] if p.isdigit()]
    # its own pid only, a small one of its namespace: hidepid hides even its template
    assert len(pids) == 1 and pids[0] != seen["server"], pids
    assert not seen["kill the server"]["ok"]
    assert seen["cwd"]["value"]["cwd"] == sandbox.TASK_ROOT
    answer, took = seen["timed out"]
    assert "Task timed out" in answer, answer
    assert took < 10  # killed at its deadline, not left to sleep 30 s
    assert seen["again"]["pid"] >= 2  # a new worker of the namespace answers

