"""Tries, from inside a function, what a sandbox must deny; answers what happened.

Each attempt answers ``{"ok": true, ...}`` when it succeeded (an escape) or
``{"ok": false, "error": "<exception name>: <message>"}`` when it was denied.
"""

import ctypes
import os
import signal

PTRACE_ATTACH, PTRACE_DETACH = 16, 17


def _read(path):
    with open(path, "rb") as file:
        return file.read(64).decode("latin-1")


def _write(path):
    with open(path, "w") as file:
        file.write("pwned")
    return path


def _ptrace(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    libc.ptrace(PTRACE_DETACH, pid, None, None)
    return pid


def _server_pid():
    """The template's parent, read as an attacker would: /proc/<ppid>/stat."""
    with open(f"/proc/{os.getppid()}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def _fork_bomb(limit):
    """Fork children (each waits to be killed) until the kernel refuses; kill them all;
    answer how many were made."""
    children = []
    try:
        while len(children) < limit:
            pid = os.fork()
            if pid == 0:
                signal.pause()
                os._exit(0)
            children.append(pid)
    except OSError:
        pass
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return len(children)


def _fill_tmp(megabytes):
    chunk = b"\0" * (1 << 20)
    try:
        with open("/tmp/fill", "wb") as file:
            for _ in range(megabytes):
                file.write(chunk)
                file.flush()
    finally:  # /tmp is memory (tmpfs): give it back
        os.unlink("/tmp/fill")
    return megabytes


ATTEMPTS = {
    "whoami": lambda e: {"uid": os.getuid(), "gid": os.getgid()},
    "read": lambda e: _read(e["path"]),
    "write": lambda e: _write(e["path"]),
    "listdir": lambda e: sorted(os.listdir(e["path"])),
    "kill": lambda e: os.kill(e["pid"], signal.SIGKILL),
    "kill_server": lambda e: os.kill(_server_pid(), signal.SIGKILL),
    "ptrace": lambda e: _ptrace(e["pid"]),
    "ptrace_server": lambda e: _ptrace(_server_pid()),
    "fill_tmp": lambda e: _fill_tmp(e["megabytes"]),
    "fork_bomb": lambda e: _fork_bomb(e["limit"]),
    "pid": lambda e: os.getpid(),
    "cwd": lambda e: {"cwd": os.getcwd(), "task_root": os.environ.get("LAMBDA_TASK_ROOT")},
}


def handler(event, context):
    try:
        return {"ok": True, "value": ATTEMPTS[event["try"]](event)}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
