"""Where the server running on a state directory can be reached: ``server.json`` there,
written once it listens and removed when it stops, so that the commands that read a state
directory (``billing``) can tell its live figures apart from the last run's."""

from __future__ import annotations

import contextlib
import os

import msgspec

from .jsonfile import load_json, save_json


class Running(msgspec.Struct):
    pid: int
    url: str  # its Lambda API


def _path(state_dir: str) -> str:
    return os.path.join(state_dir, "server.json")


def announce(state_dir: str, url: str) -> None:
    save_json(_path(state_dir), Running(os.getpid(), url))


def withdraw(state_dir: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(state_dir))


def running(state_dir: str) -> Running | None:
    """The server running on ``state_dir`` now, if any (a file a crash left is ignored)."""
    try:
        found = load_json(_path(state_dir), Running, None)
    except msgspec.DecodeError:
        return None
    if found is None:
        return None
    try:
        os.kill(found.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's process: alive
        pass
    return found
