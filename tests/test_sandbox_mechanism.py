"""The sandbox mechanism, played from inside as an attacker's function would.

No server here: the test process stands in for it.  A forked child enters a function
template's environment (``enter_template``, with a temporary code directory), optionally runs
"Init" code there, then forks workers into environments of their own
(``fork_environment``: own user and mount namespaces, the template's PID namespace) and runs
the attacker's code in each.  Every escape must be denied;
ordinary work must succeed.  Results come back as JSON through pipes: no sleeps.

Needs root (the template's environment is built as root) and unprivileged user namespaces
(the workers'); elsewhere the tests skip, saying why.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import pwd
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
from helpers import sandbox_layout_problem

from fastinvoke import _core
from fastinvoke.runtime import sandbox

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a template's environment (a "
                       "mount namespace, another uid) is built by root"),
    pytest.mark.skipif(sandbox_layout_problem() is not None,
                       reason=f"not sandboxable here: {sandbox_layout_problem()}"),
]

UID = 61051  # unused on the host, so leftovers are easy to find
CODE = "ANSWER = 42\n"
TMP_MB = 16
PTRACE_ATTACH = 16
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWUSER = 0x10000000
libc = ctypes.CDLL(None, use_errno=True)

Probe = Callable[[dict[str, Any], int], dict[str, Any]]


def outcome(action: Callable[[], object]) -> str:
    """'allowed', or the errno name the attempt failed with."""
    try:
        action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "allowed"


def libc_call(rc: int) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def ptrace_attach(pid: int) -> None:
    libc_call(libc.ptrace(PTRACE_ATTACH, pid, None, None))


def read_line(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    return data


def status_fields() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Any]:
    """The code directory and, outside it, a fake keys file and state directory."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(CODE)
    code.chmod(0o755)
    (code / "app.py").chmod(0o644)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "functions.json").write_text('{"other": {"SECRET": "s3cr3t"}}')
    keys = tmp_path / "keys.json"
    keys.write_text('{"AKIDEXAMPLE": "wJalrXUtnFEMI"}')
    other = tmp_path / "other-function"
    other.mkdir()
    (other / "app.py").write_text("SECRET = 's3cr3t'\n")
    return {"server": os.getpid(), "code": str(code), "state": str(state), "keys": str(keys),
            "other": str(other)}


def answer_and_exit(report_w: int, body: Callable[[], Any]) -> NoReturn:
    """In a forked child: write ``body()`` as JSON to ``report_w`` (or why it could not
    run: the sandbox unavailable here, or the traceback), then exit."""
    try:
        result = body()
    except sandbox.SandboxUnavailable as exc:
        result = {"skip": exc.reason}
    except BaseException:
        result = {"error": traceback.format_exc()}
    os.write(report_w, json.dumps(result).encode())
    os._exit(0)


def run_sandbox(host: dict[str, Any], init: Callable[[dict[str, Any]], dict[str, Any]] | None =
                None, worker: Probe | None = None, *, workers: int = 1, tmp_mb: int = TMP_MB,
                nproc: int = sandbox.LAMBDA_NPROC, cgroup_procs: tuple[int, ...] = (),
                after: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                tmp_overlay: bool | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fork a template into its environment, run ``init`` there, then fork ``workers``
    workers one after another, each running ``worker(ctx, index)`` (``ctx["workers"]``:
    the pids of those forked before it).  A worker stays alive (with whatever it started)
    until every worker has reported, so they coexist.  ``after`` runs in the template once
    the workers have ended; its report is init's, under "after".  Returns (init's report,
    the workers' reports, each with "forked": its pid as the template got it).  A worker's
    /tmp: what ``probe_workers`` finds (``tmp_overlay`` None), the overlay (True: the test
    skips without it) or a plain tmpfs (False)."""
    ctx = dict(host)
    report_r, report_w = os.pipe()
    template = os.fork()
    if template == 0:  # the template
        os.close(report_r)

        def template_runs() -> dict[str, Any]:
            result: dict[str, Any] = {}
            sandbox.enter_template(ctx["code"], UID, tmp_mb=tmp_mb, pdeathsig=signal.SIGKILL,
                                   denied=[ctx["state"], ctx["keys"]])
            ctx["template"] = os.getpid()
            # No PID namespace ends a worker's leftovers with it: they come back here
            libc_call(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
            result["init"] = init(ctx) if init else {}
            if workers:
                tmp = sandbox.probe_workers()
                ctx["tmp_overlay"] = tmp.overlay and tmp_overlay is not False
                result["tmp warning"] = tmp.warning
            result["workers"] = _fork_workers(ctx, worker, workers, tmp_mb, nproc, cgroup_procs)
            if after:
                result["init"]["after"] = after(ctx)
            return result

        answer_and_exit(report_w, template_runs)
    os.close(report_w)
    data = read_all(report_r)  # EOF: the template and every process it started are gone
    os.close(report_r)
    os.waitpid(template, 0)
    result = json.loads(data or b'{"error": "the template exited without a report"}')
    if "skip" in result:
        pytest.skip(result["skip"])
    if tmp_overlay and result.get("tmp warning"):  # the probe fell back
        pytest.skip(result["tmp warning"])
    errors = [r["error"] for r in [result, result.get("init", {}), *result.get("workers", [])]
              if "error" in r]
    assert not errors, "\n".join(errors)
    return result["init"], result["workers"]


def _fork_workers(ctx: dict[str, Any], probe: Probe | None, count: int, tmp_mb: int, nproc: int,
                  cgroup_procs: tuple[int, ...]) -> list[dict[str, Any]]:
    reports = []
    hold_r, hold_w = os.pipe()
    pids: list[int] = []
    for index in range(count):
        ctx["workers"] = list(pids)
        line_r, line_w = os.pipe()
        pid = sandbox.fork_environment(tmp_mb, signal.SIGKILL, cgroup_procs, nproc,
                                       tmp_overlay=ctx["tmp_overlay"])
        if pid == 0:  # a worker
            os.close(hold_w)
            os.close(line_r)
            try:
                report = probe(ctx, index) if probe else {}
            except BaseException:
                report = {"error": traceback.format_exc()}
            os.write(line_w, json.dumps(report).encode() + b"\n")
            os.read(hold_r, 1)  # until every worker has reported
            os._exit(0)
        pids.append(pid)
        os.close(line_w)
        line = read_line(line_r)
        os.close(line_r)
        report = json.loads(line or b'{"error": "the worker exited without a report"}')
        reports.append({**report, "forked": pid})
    os.close(hold_w)
    for pid in pids:
        os.waitpid(pid, 0)
    while True:  # and whatever they left, once it ends
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return reports


def processes_of(uid: int) -> list[int]:
    """The live (not zombie) processes of ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid:
                state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
                if state != "Z":
                    found.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return found


# -- who the function is -------------------------------------------------------------------


def test_the_function_runs_as_the_unprivileged_uid_without_any_capability(host) -> None:
    def identity(ctx: dict[str, Any], index: int = 0) -> dict[str, Any]:
        status = status_fields()
        return {
            "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],
            "groups": os.getgroups(),
            "name": pwd.getpwuid(os.getuid()).pw_name,
            "caps": {k: status[k] for k in status if k.startswith("Cap")},
            "no_new_privs": status["NoNewPrivs"],
            "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
            "own environ": outcome(lambda: Path("/proc/self/environ").read_bytes()),
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
            "setuid(0)": outcome(lambda: os.setuid(0)),
            "pdeathsig": _pdeathsig(),
            # the tid glibc keeps for the thread (a worker's clone must set it, as fork does)
            "glibc tid": ~(time.pthread_getcpuclockid(threading.get_ident()) >> 3),
        }

    init, (worker,) = run_sandbox(host, identity, identity)
    for who in (init, worker):
        assert who["ids"] == [UID] * 4
        assert who["groups"] == []
        assert who["name"] == sandbox.SANDBOX_USER
        assert set(who["caps"].values()) == {"0000000000000000"}, who["caps"]
        assert who["no_new_privs"] == "1"
        assert who["cwd"] == sandbox.TASK_ROOT
        assert who["nofile"] == [sandbox.LAMBDA_NOFILE] * 2
        assert who["setuid(0)"] in ("EPERM", "EINVAL")  # EINVAL: 0 is not mapped in a worker
        assert who["pdeathsig"] == signal.SIGKILL  # re-armed after the uid change
        assert who["own environ"] == "allowed"  # dumpable: its /proc/self is its own
    assert init["ppid"] == host["server"]
    # A worker shares the template's PID namespace: its pid is the one the template got
    # (and reports to the server), its parent the template.
    assert (worker["pid"], worker["ppid"]) == (worker["forked"], init["pid"])
    assert init["glibc tid"] == init["pid"]
    if _tid_address_known():
        assert worker["glibc tid"] == worker["pid"]


def _tid_address_known() -> bool:
    """PR_GET_TID_ADDRESS (CONFIG_CHECKPOINT_RESTORE): what lets the clone set glibc's tid."""
    address = ctypes.c_void_p()
    return libc.prctl(40, ctypes.byref(address), 0, 0, 0) == 0 and bool(address.value)


def _pdeathsig() -> int:
    value = ctypes.c_int()
    libc_call(libc.prctl(2, ctypes.byref(value), 0, 0, 0))  # PR_GET_PDEATHSIG
    return value.value


# -- what it can read and write ------------------------------------------------------------


def test_host_secrets_are_not_there(host) -> None:
    interpreter = sandbox.interpreter_paths()

    def secrets(ctx: dict[str, Any], index: int = 0) -> dict[str, Any]:
        server = ctx["server"]
        return {
            "/etc/shadow": outcome(lambda: open("/etc/shadow").read()),
            "keys": outcome(lambda: open(ctx["keys"]).read()),
            "state file": outcome(lambda: open(f"{ctx['state']}/functions.json").read()),
            "state dir": outcome(lambda: os.listdir(ctx["state"])),
            "other code": outcome(lambda: open(f"{ctx['other']}/app.py").read()),
            "server's root": outcome(lambda: os.listdir(f"/proc/{server}/root/")),
            "server's environ": outcome(lambda: open(f"/proc/{server}/environ").read()),
            "/root": sorted(_walk_dirs("/root")),
            "/etc": sorted(os.listdir("/etc")),
        }

    init, (worker,) = run_sandbox(host, secrets, secrets)
    for who in (init, worker):
        for name in ("/etc/shadow", "keys", "state file", "state dir", "other code",
                     "server's root", "server's environ"):
            assert who[name] in ("ENOENT", "EACCES", "ESRCH"), (name, who[name])
        # /root holds nothing but the way down to an interpreter prefix bound there.
        for path in who["/root"]:
            assert any(p == path or p.startswith(path + "/") for p in interpreter), path
        assert "shadow" not in who["/etc"] and "gshadow" not in who["/etc"]
        assert {"passwd", "group", "hosts", "resolv.conf"} <= set(who["/etc"])


def _walk_dirs(top: str) -> list[str]:
    """Every directory under ``top`` down to the first mount point (a bound prefix)."""
    if not os.path.isdir(top):
        return []
    found = []
    for entry in os.scandir(top):
        found.append(entry.path)
        if entry.is_dir(follow_symlinks=False) and not os.path.ismount(entry.path):
            found += _walk_dirs(entry.path)
    return found


def test_the_code_is_read_only_at_var_task_and_the_root_too(host) -> None:
    def writes(ctx: dict[str, Any], index: int = 0) -> dict[str, Any]:
        with open("/var/task/app.py") as f:
            code = f.read()
        return {
            "code": code,
            "overwrite": outcome(lambda: open("/var/task/app.py", "w")),
            "create": outcome(lambda: open("/var/task/new.py", "x")),
            "chmod": outcome(lambda: os.chmod("/var/task/app.py", 0o777)),
            "rename": outcome(lambda: os.rename("/var/task/app.py", "/var/task/b.py")),
            "mkdir /x": outcome(lambda: os.mkdir("/x")),
            "write /usr": outcome(lambda: open("/usr/evil", "x")),
            "write /etc/passwd": outcome(lambda: open("/etc/passwd", "a")),
            "remount": outcome(lambda: libc_call(libc.mount(
                None, b"/var/task", None, 0x20 | 0x1000, None))),  # MS_REMOUNT|MS_BIND
            "/opt": os.listdir("/opt"),
        }

    init, (worker,) = run_sandbox(host, writes, writes)
    worker.pop("forked")
    for who in (init, worker):
        assert who.pop("code") == CODE
        assert who.pop("/opt") == []
        assert who.pop("remount") == "EPERM"
        for name, result in who.items():
            assert result in ("EROFS", "EACCES"), (name, result)
    assert Path(host["code"], "app.py").read_text() == CODE


# -- what it can see and signal ------------------------------------------------------------


def _stranger(uid: int) -> tuple[int, int]:
    """A process of another uid (another function's), blocked until the returned write end
    of its pipe closes: (its pid, that write end)."""
    block_r, block_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(block_w)
        os.setgid(uid)
        os.setuid(uid)
        os.read(block_r, 1)
        os._exit(0)
    os.close(block_r)
    return pid, block_w


def test_a_worker_sees_and_reaches_no_process_but_its_own(host) -> None:
    stranger, release = _stranger(UID + 1)

    def reach(ctx: dict[str, Any], index: int) -> dict[str, Any]:
        others = {"server": ctx["server"], "other uid": stranger, "template": ctx["template"]}
        if ctx["workers"]:  # worker 1: worker 0 is alive until both have reported
            others["sibling"] = ctx["workers"][0]
        report: dict[str, Any] = {
            "/proc": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "me": os.getpid(),
            # the template's /proc, with hidepid=2; a proc of its own needs a capability
            "umount /proc": outcome(lambda: libc_call(libc.umount2(b"/proc", 2))),
            "mount proc": outcome(lambda: libc_call(libc.mount(b"proc", b"/tmp", b"proc", 0,
                                                               None))),
        }
        for name, pid in others.items():
            report[f"kill {name}"] = outcome(lambda pid=pid: os.kill(pid, 0))
            report[f"ptrace {name}"] = outcome(lambda pid=pid: ptrace_attach(pid))
            report[f"/proc of {name}"] = outcome(lambda pid=pid: os.stat(f"/proc/{pid}"))
            # a way into its mount namespace: its /tmp, its root
            report[f"/tmp of {name}"] = outcome(
                lambda pid=pid: os.listdir(f"/proc/{pid}/root/tmp"))
        return report

    try:
        _, (_, worker) = run_sandbox(host, worker=reach, workers=2)
    finally:
        os.close(release)
        os.waitpid(stranger, 0)
    # hidepid=2 lists what it may ptrace: its uid keeps it from the server's and another
    # function's processes, its user namespace from its template's and its sibling's.
    assert worker.pop("/proc") == [worker.pop("me")]
    assert worker.pop("umount /proc") == worker.pop("mount proc") == "EPERM"
    for name in ("server", "other uid", "template", "sibling"):
        assert worker.pop(f"ptrace {name}") == "EPERM", name
        assert worker.pop(f"/proc of {name}") == "ENOENT", name
        assert worker.pop(f"/tmp of {name}") == "ENOENT", name
    assert worker.pop("kill server") in ("EPERM", "ESRCH")
    assert worker.pop("kill other uid") in ("EPERM", "ESRCH")
    # Signals go by uid: its own function's processes remain signalable (not a boundary).
    assert worker.pop("kill template") == worker.pop("kill sibling") == "allowed"
    assert list(worker) == ["forked"]


def test_a_handler_ends_itself_with_a_signal_as_on_lambda(host) -> None:
    def init(ctx: dict[str, Any]) -> dict[str, Any]:
        overlay = sandbox.probe_workers().overlay
        ended = {}
        for sig in (signal.SIGKILL, signal.SIGTERM):
            pid_r, pid_w = os.pipe()
            pid = sandbox.fork_environment(TMP_MB, signal.SIGKILL, tmp_overlay=overlay)
            if pid == 0:  # a handler, or the Node.js bridge ending as its runtime did
                os.write(pid_w, str(os.getpid()).encode())
                os.kill(os.getpid(), sig)
                os._exit(3)  # a PID 1 would get here: its own signal is ignored
            os.close(pid_w)
            seen = int(read_all(pid_r))
            os.close(pid_r)
            _, status = os.waitpid(pid, 0)
            ended[sig.name] = [seen == pid, os.waitstatus_to_exitcode(status)]
        return ended

    init, _ = run_sandbox(host, init, workers=0)
    # the pid it knows itself by is the one its template (and so the server) has
    assert init == {"SIGKILL": [True, -signal.SIGKILL], "SIGTERM": [True, -signal.SIGTERM]}


def test_init_code_cannot_see_signal_or_trace_the_server(host) -> None:
    def reach(ctx: dict[str, Any]) -> dict[str, Any]:
        server = ctx["server"]
        return {
            "visible": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "kill": outcome(lambda: os.kill(server, 0)),
            "ptrace": outcome(lambda: ptrace_attach(server)),
            "me": os.getpid(),
        }

    init, _ = run_sandbox(host, reach, workers=0)
    # hidepid: the template's /proc shows its own user's processes only
    assert init["visible"] == [init["me"]]
    assert init["kill"] == "EPERM" and init["ptrace"] == "EPERM"


# -- /tmp ----------------------------------------------------------------------------------

MODEL = b"\x00weights\xff" * 4096  # what Init downloads to /tmp (40 KiB)


def _fill_tmp(index: int) -> dict[str, Any]:
    """Write /tmp/fill-<index> until the file system is full."""
    report: dict[str, Any] = {"errno": None}
    written, chunk = 0, b"x" * (1 << 20)
    try:
        with open(f"/tmp/fill-{index}", "wb", buffering=0) as f:
            while True:
                written += f.write(chunk)
    except OSError as exc:
        report["errno"] = errno.errorcode[exc.errno or 0]
    report["written_mb"] = written / (1 << 20)
    return report


def _tmp_mount() -> list[str]:
    """What is mounted on /tmp (the template's below the worker's) and on the store."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        point = left.split()[4]
        if point == "/tmp" or point.startswith(sandbox.WORKER_STORE):
            found.append(f"{point} {right.split()[0]}")
    return found


def test_a_worker_s_tmp_holds_what_init_wrote_and_keeps_its_own_writes(host) -> None:
    def init(ctx: dict[str, Any]) -> dict[str, Any]:
        Path("/tmp/model.bin").write_bytes(MODEL)
        Path("/tmp/cache").mkdir()
        Path("/tmp/cache/index.json").write_text("{}")
        return {}

    def use(ctx: dict[str, Any], index: int) -> dict[str, Any]:
        report: dict[str, Any] = {
            "model": Path("/tmp/model.bin").read_bytes() == MODEL,
            "seen": sorted(os.listdir("/tmp")),
            "cache": os.listdir("/tmp/cache"),
            "mode": oct(os.stat("/tmp").st_mode & 0o7777),
            "mounts": _tmp_mount(),
            "store": outcome(lambda: os.listdir(sandbox.WORKER_STORE)),
        }
        Path(f"/tmp/worker-{index}").write_text("mine")
        if index == 0:  # change, delete and re-create Init's files: for itself only
            with open("/tmp/model.bin", "r+b") as f:
                f.write(b"tampered")
            Path("/tmp/cache/index.json").unlink()
            Path("/tmp/cache").rmdir()
            Path("/tmp/cache").mkdir()
            report["changed"] = [Path("/tmp/model.bin").read_bytes()[:8].decode(),
                                 sorted(os.listdir("/tmp")), os.listdir("/tmp/cache")]
        report.update(_fill_tmp(index))
        report["read back"] = Path(f"/tmp/worker-{index}").read_text()
        return report

    def after(ctx: dict[str, Any]) -> dict[str, Any]:  # the template, once both have ended
        return {"model": Path("/tmp/model.bin").read_bytes() == MODEL,
                "seen": sorted(os.listdir("/tmp")), "cache": os.listdir("/tmp/cache")}

    init, (first, second) = run_sandbox(host, init, use, workers=2, after=after,
                                        tmp_overlay=True)
    for worker in (first, second):
        # Init's files, and not the sibling's: worker 1 runs while worker 0 still lives
        assert worker["model"] is True
        assert worker["seen"] == ["cache", "model.bin"]
        assert worker["cache"] == ["index.json"]
        assert worker["mode"] == "0o1777"
        # over the template's tmpfs; the store detached from the tree
        assert worker["mounts"] == ["/tmp tmpfs", "/tmp overlay"]
        assert worker["store"] == "EACCES"
        assert worker["read back"] == "mine"
        # bounded by its own size (the copy of model.bin counts in worker 0's)
        assert worker["errno"] == "ENOSPC"
        assert TMP_MB - 1 <= worker["written_mb"] <= TMP_MB
    assert first["changed"] == ["tampered", ["cache", "model.bin", "worker-0"], []]
    assert init["after"] == {"model": True, "seen": ["cache", "model.bin"],
                             "cache": ["index.json"]}


def test_without_the_overlay_a_worker_s_tmp_starts_empty_and_is_its_own(host) -> None:
    def init(ctx: dict[str, Any]) -> dict[str, Any]:
        Path("/tmp/from-init").write_text("init")
        return {}

    def fill(ctx: dict[str, Any], index: int) -> dict[str, Any]:
        report: dict[str, Any] = {"seen": sorted(os.listdir("/tmp")), "mounts": _tmp_mount()}
        Path(f"/tmp/worker-{index}").write_text("mine")
        report.update(_fill_tmp(index))
        report["read back"] = Path(f"/tmp/worker-{index}").read_text()
        return report

    _, workers = run_sandbox(host, init, fill, workers=2, tmp_overlay=False)
    for worker in workers:
        assert worker["seen"] == []  # neither Init's files nor the sibling's
        assert worker["mounts"] == ["/tmp tmpfs", "/tmp tmpfs"]
        assert worker["errno"] == "ENOSPC"
        assert TMP_MB - 1 <= worker["written_mb"] <= TMP_MB
        assert worker["read back"] == "mine"


def test_the_probe_falls_back_to_a_plain_tmp_and_says_why() -> None:
    # Outside a template's root there is no store to mount on: only the overlay fails.
    if os.path.exists(sandbox.WORKER_STORE):
        pytest.skip(f"{sandbox.WORKER_STORE} exists on this host")
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a single-threaded process, as a template is
        os.close(report_r)
        answer_and_exit(report_w, lambda: list(sandbox.probe_workers()))
    os.close(report_w)
    result = json.loads(read_all(report_r))
    os.close(report_r)
    os.waitpid(pid, 0)
    if isinstance(result, dict):
        assert "skip" in result, result.get("error")
        pytest.skip(result["skip"])
    overlay, warning = result
    assert overlay is False
    assert f"mount tmpfs on {sandbox.WORKER_STORE}" in warning
    assert "No such file or directory" in warning
    assert "files Init wrote to /tmp are not there" in warning


# -- processes -----------------------------------------------------------------------------


def _bomb(limit: int) -> dict[str, Any]:
    """Fork children that wait until refused, never past ``limit``.  They wait on a pipe
    whose write end only the worker keeps: they end when it does (no PID namespace ends
    them; the server would, by the worker's cgroup)."""
    block_r, block_w = os.pipe()
    made = 0
    try:
        while made < limit:
            if os.fork() == 0:
                os.close(block_w)
                os.read(block_r, 1)
                os._exit(0)
            made += 1
    except OSError as exc:
        return {"made": made, "errno": errno.errorcode[exc.errno or 0]}
    return {"made": made, "errno": None}


def test_a_fork_bomb_stops_at_the_worker_s_nproc_and_spares_its_sibling(host) -> None:
    nproc = 32

    def bomb_then_sibling(ctx: dict[str, Any], index: int) -> dict[str, Any]:
        # worker 0 keeps every child it could make while worker 1 makes its own
        return _bomb(10 * nproc) if index == 0 else _bomb(8)

    _, (bomber, sibling) = run_sandbox(host, worker=bomb_then_sibling, workers=2, nproc=nproc)
    bomber.pop("forked")
    sibling.pop("forked")
    # RLIMIT_NPROC counts per (user namespace, uid) since Linux 5.14: the worker counts too
    assert bomber == {"made": nproc - 1, "errno": "EAGAIN"}
    assert sibling == {"made": 8, "errno": None}
    # the template reaped every child the bomber left (their pipe closed with it)
    assert processes_of(UID) == []
    assert subprocess.run(["true"]).returncode == 0


def _pids_cgroup() -> Path | None:
    """Our own group in a writable hierarchy with the pids controller (v1, or v2 with pids
    available to children), or None."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(","):
            own[name] = path
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, (fstype, _, options) = left.split(), right.split()[:3]
        point, root = Path(fields[4]), fields[3]
        if fstype == "cgroup" and "pids" in options.split(",") and "pids" in own:
            path = own["pids"]
        elif fstype == "cgroup2" and "" in own:
            path = own[""]
        else:
            continue
        if root != "/" and not path.startswith(root):
            continue
        group = point / path[len(root.rstrip("/")):].lstrip("/")
        if fstype == "cgroup2":
            control = group / "cgroup.subtree_control"
            if "pids" not in (group / "cgroup.controllers").read_text().split():
                continue
            if "pids" not in control.read_text().split():
                try:
                    control.write_text("+pids")
                except OSError:
                    continue
        if os.access(group, os.W_OK):
            return group
    return None


def test_a_fork_bomb_stops_at_the_pids_cgroup_limit(host) -> None:
    parent = _pids_cgroup()
    if parent is None:
        pytest.skip("no writable cgroup hierarchy with the pids controller here")
    limit = 24
    group = parent / f"fastinvoke-sandbox-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "pids.max").write_text(str(limit))
        procs = os.open(group / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        try:
            _, (bomber,) = run_sandbox(host, worker=lambda ctx, i: _bomb(10 * limit),
                                       nproc=0, cgroup_procs=(procs,))
        finally:
            os.close(procs)
        bomber.pop("forked")
        events = dict(line.split() for line in (group / "pids.events").read_text().splitlines())
        assert (group / "cgroup.procs").read_text() == ""
    finally:
        group.rmdir()
    assert bomber == {"made": limit - 1, "errno": "EAGAIN"}
    assert int(events["max"]) >= 1


# -- what the kernel would let it become ---------------------------------------------------


def test_a_worker_can_neither_nest_namespaces_nor_mount_and_the_refusal_is_explained(host):
    def escalate(ctx: dict[str, Any], index: int = 0) -> dict[str, Any]:
        try:
            sandbox.probe_workers()
            reason = None
        except sandbox.SandboxUnavailable as exc:
            reason = exc.reason
        try:
            sandbox.enter_template("/var/task", UID)
            entered = None
        except sandbox.SandboxUnavailable as exc:
            entered = exc.reason
        return {
            "unshare(CLONE_NEWUSER)": outcome(lambda: libc_call(libc.unshare(CLONE_NEWUSER))),
            "mount tmpfs": outcome(lambda: libc_call(libc.mount(b"x", b"/tmp", b"tmpfs", 0,
                                                                None))),
            "probe": reason, "enter": entered,
        }

    _, (worker,) = run_sandbox(host, worker=escalate)
    assert worker["unshare(CLONE_NEWUSER)"] == "ENOSPC"  # max_user_namespaces is 0 here
    assert worker["mount tmpfs"] == "EPERM"
    # what a template that cannot give workers namespaces logs once before it falls back
    assert "user.max_user_namespaces is 0" in worker["probe"]
    assert "share its template's /tmp" in worker["probe"]
    assert "does not run as root" in worker["enter"]


# -- what must still work ------------------------------------------------------------------


def test_ordinary_work_succeeds_inside(host) -> None:
    fresh = ("import json, sqlite3, ssl, zoneinfo, msgspec, yaml; print(msgspec.json.encode("
             "[json.loads('42'), zoneinfo.ZoneInfo('UTC').key]).decode())")

    def work(ctx: dict[str, Any], index: int = 0) -> dict[str, Any]:
        import msgspec

        Path("/tmp/scratch").write_bytes(b"data")
        with open("/dev/null", "w") as null:
            null.write("discarded")
        sys.path.insert(0, "/var/task")
        import app  # the function's code, from /var/task

        child = subprocess.run([sys.executable, "-c", fresh], capture_output=True, text=True)
        return {
            "msgspec": msgspec.json.decode(msgspec.json.encode({"a": [1, 2]})),
            "tmp": Path("/tmp/scratch").read_bytes().decode(),
            "code": app.ANSWER,
            "urandom": len(os.urandom(16)),
            "localhost": socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)[0][4][1],
            # a fresh interpreter imports the stdlib and site-packages from inside
            "fresh": (child.returncode, child.stdout.strip(), child.stderr[-2000:]),
        }

    init, (worker,) = run_sandbox(host, work, work)
    for who in (init, worker):
        assert who["msgspec"] == {"a": [1, 2]}
        assert who["tmp"] == "data"
        assert who["code"] == 42
        assert who["urandom"] == 16
        assert who["localhost"] == 80
        assert who["fresh"] == [0, '[42,"UTC"]', ""]


# -- the policy's checks and the mechanism's errors ----------------------------------------


def test_the_policy_refuses_to_expose_denied_paths(host) -> None:
    keys_in_code = Path(host["code"], "keys.json")
    keys_in_code.write_text("{}")
    with pytest.raises(ValueError, match="would expose"):
        sandbox.template_ops(host["code"], UID, UID, denied=[str(keys_in_code)])
    with pytest.raises(ValueError, match="would expose"):
        sandbox.template_ops(host["code"], UID, UID, extra=[host["state"]],
                             denied=[host["state"]])
    with pytest.raises(ValueError, match="would expose /etc/shadow"):
        sandbox.template_ops("/", UID, UID)
    with pytest.raises(sandbox.SandboxUnavailable, match="is under /tmp, which each function's"):
        sandbox.template_ops(host["code"], UID, UID, extra=[host["other"]])
    with pytest.raises(ValueError, match="unprivileged"):
        sandbox.enter_template(host["code"], 0)
    sources = [op[1] for op in sandbox.template_ops(host["code"], UID, UID) if op[0] == "ro-bind"]
    sandbox.check_sources(sources, ["/etc/shadow", "/root", host["state"], host["keys"]])


def test_a_failed_step_is_named_with_its_errno(tmp_path) -> None:
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        try:
            _core.enter_environment([("ro-bind", str(tmp_path / "missing"), "/x")], UID, UID)
            message = "entered"
        except OSError as exc:
            message = f"{exc.errno} {exc.strerror}"
        os.write(report_w, message.encode())
        os._exit(0)  # half-changed: a real template exits too
    os.close(report_w)
    message = read_all(report_r).decode()
    os.close(report_r)
    os.waitpid(pid, 0)
    assert message == (f"{errno.ENOENT} enter_environment: stat {tmp_path / 'missing'}: "
                       "No such file or directory")
