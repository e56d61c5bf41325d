"""A function plays the attacker from inside its sandbox, through a real Invoker: each
escape that the unsandboxed server allowed is denied (README, "Sandbox").

The sandbox needs root (a mount namespace and another uid for each function); workers'
own namespaces need unprivileged user namespaces.  Without them these tests are skipped
with the reason, and ``Invoker`` says what is not isolated in one warning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import FUNCTIONS, sandbox_layout_problem

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.runtime import sandbox

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="plays the attacker as root's sandbox meets it (without root: "
                       "test_sandbox_unprivileged)"),
    pytest.mark.skipif(sandbox_layout_problem() is not None,
                       reason=f"not sandboxable here: {sandbox_layout_problem()}"),
]


@pytest.fixture(scope="module")
def invoker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Invoker]:
    """Two functions of one server: the attacker, and a victim with a secret variable."""
    try:
        sandbox.probe_workers()
    except sandbox.SandboxUnavailable as exc:
        pytest.skip(f"workers cannot have namespaces here: {exc.reason}")
    state = tmp_path_factory.mktemp("state")
    with Invoker(state) as made:
        made.create_function(FunctionConfig(
            name="attacker", handler="attacker.handler", code=FUNCTIONS, memory_mb=1024,
            timeout_s=30))
        made.create_function(FunctionConfig(
            name="victim", handler="attacker.handler", code=FUNCTIONS,
            env={"SECRET": "the victim's secret"}))
        yield made


def attempt(invoker: Invoker, name: str = "attacker", **event: Any) -> dict[str, Any]:
    return invoker.call(name, event)


def denied(answer: dict[str, Any], *errors: str) -> bool:
    return not answer["ok"] and answer["error"].startswith(errors)


def test_a_function_runs_as_its_own_unprivileged_user(invoker: Invoker) -> None:
    mine, theirs = (attempt(invoker, name, **{"try": "whoami"})["value"]
                    for name in ("attacker", "victim"))
    assert mine["uid"] > 0 and mine["gid"] > 0
    assert mine["uid"] != theirs["uid"]  # nor another function's
    where = attempt(invoker, **{"try": "cwd"})["value"]
    assert where == {"cwd": "/var/task", "task_root": "/var/task"}


def test_server_secrets_and_state_are_out_of_reach(invoker: Invoker, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"AKIDEXAMPLE": "secret"}))
    state = Path(invoker.state_dir)
    for path in (keys, state / "functions.json", state / "logs.db", "/etc/shadow",
                 "/proc/1/environ", f"/proc/{os.getpid()}/environ"):
        assert denied(attempt(invoker, **{"try": "read", "path": str(path)}),
                      "FileNotFoundError", "PermissionError"), path
    for path in (state / "functions.json", state / "planted", "/var/task/planted",
                 "/etc/passwd", "/usr/planted"):
        assert denied(attempt(invoker, **{"try": "write", "path": str(path)}),
                      "FileNotFoundError", "PermissionError", "OSError: [Errno 30]"), path


def test_another_functions_processes_and_files_are_invisible(invoker: Invoker) -> None:
    victim = attempt(invoker, "victim", **{"try": "pid"})["value"]
    assert denied(attempt(invoker, **{"try": "read", "path": f"/proc/{victim}/environ"}),
                  "FileNotFoundError", "PermissionError")
    assert str(victim) not in attempt(invoker, **{"try": "listdir", "path": "/proc"})["value"]
    assert denied(attempt(invoker, **{"try": "kill", "pid": victim}),
                  "PermissionError", "ProcessLookupError")
    assert attempt(invoker, "victim", **{"try": "write", "path": "/tmp/victims-file"})["ok"]
    assert "victims-file" not in attempt(invoker, **{"try": "listdir", "path": "/tmp"})["value"]


def test_the_server_can_be_neither_seen_nor_signalled_nor_traced(invoker: Invoker) -> None:
    server = os.getpid()
    assert str(server) not in attempt(invoker, **{"try": "listdir", "path": "/proc"})["value"]
    assert denied(attempt(invoker, **{"try": "kill", "pid": server}), "PermissionError")
    assert denied(attempt(invoker, **{"try": "ptrace", "pid": server}), "PermissionError")
    assert denied(attempt(invoker, **{"try": "kill_server"}),
                  "FileNotFoundError", "PermissionError")
    assert attempt(invoker, **{"try": "whoami"})["ok"]  # and the server still answers


def test_tmp_fills_up_at_the_functions_ephemeral_storage(invoker: Invoker) -> None:
    answer = attempt(invoker, **{"try": "fill_tmp", "megabytes": 600})
    assert denied(answer, "OSError: [Errno 28]"), answer  # ENOSPC at 512 MB


def test_a_fork_bomb_stops_inside_its_environment(invoker: Invoker) -> None:
    made = attempt(invoker, **{"try": "fork_bomb", "limit": 5000})["value"]
    assert 100 <= made < sandbox.LAMBDA_NPROC  # Lambda's 1,024 processes and threads
    assert attempt(invoker, "victim", **{"try": "pid"})["ok"]  # others unharmed


def test_without_the_sandbox_a_function_runs_as_the_server(tmp_path: Path) -> None:
    """The measurement switch: ``Invoker(sandbox=False)``."""
    with Invoker(tmp_path / "state", sandbox=False) as plain:
        plain.create_function(FunctionConfig(name="attacker", handler="attacker.handler",
                                             code=FUNCTIONS))
        assert attempt(plain, **{"try": "whoami"})["value"]["uid"] == os.getuid()
