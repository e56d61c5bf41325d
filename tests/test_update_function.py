"""Changing a function while it runs: configuration, code, reserved concurrency.

Lambda's semantics: after an update, invocations run in new execution environments
(Init again, with the new configuration or code); the environments already running
finish their invocation and are retired; meters go on.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    MakeFunction,
    alive,
    descendants,
    describe,
    notify_socket,
    parent_of,
    wait_until,
)

from fastinvoke import Invoker
from fastinvoke.errors import (
    InvalidParameterValueException,
    TooManyRequestsException,
    ValidationException,
)

MARKED = """
import os, socket, time

def handler(event, context):
    if "notify" in event:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"running", event["notify"])
    time.sleep(event.get("seconds", 0))
    return {"pid": os.getpid(), "mark": os.environ.get("MARK"),
            "memory": context.memory_limit_in_mb, "code": CODE}

CODE = "first"
"""


def call_in_thread(invoker: Invoker, name: str, event: dict[str, Any]) -> tuple[
        threading.Thread, list[Any]]:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(invoker.call(name, event)))
    thread.start()
    return thread, results


def test_an_update_runs_later_invocations_in_new_environments(
        invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("marked.handler", source=MARKED, env={"MARK": "a"}, timeout_s=10)
    first = invoker.call(name, {})
    with notify_socket() as (sock, path):
        thread, old = call_in_thread(invoker, name, {"seconds": 1.0, "notify": path})
        assert sock.recv(64) == b"running"
        config = invoker.update_function(name, env={"MARK": "b"}, memory_mb=256)
        assert config.memory_mb == 256 and invoker.get_function(name).env == {"MARK": "b"}
        new = invoker.call(name, {})
        thread.join()
    # The invocation already running finished in its old environment...
    assert old == [{"pid": first["pid"], "mark": "a", "memory": "128", "code": "first"}]
    # ...and later ones ran in a new one, with the new configuration.
    assert new["mark"] == "b" and new["memory"] == "256" and new["pid"] != first["pid"]
    # The old worker and its template end once it has answered; the new ones stay (the
    # new worker, and the spare forked when it took the new template's last idle worker).
    new_template = parent_of(new["pid"])
    wait_until(lambda: not alive(first["pid"]))

    def only_the_new_ones() -> bool:
        left = descendants(os.getpid()) - {new_template, new["pid"]}
        return new_template in descendants(os.getpid()) and len(left) <= 1 and all(
            parent_of(pid) == new_template for pid in left)

    wait_until(only_the_new_ones,
               message=lambda: f"processes: {describe(descendants(os.getpid()))}")
    figures = invoker.meter(name)
    assert figures["invocations"] == 3 and figures["cold_starts"] == 2


def test_an_update_of_the_code_runs_the_new_code(
        invoker: Invoker, make_function: MakeFunction, tmp_path: Path) -> None:
    name = make_function("marked.handler", source=MARKED)
    assert invoker.call(name, {})["code"] == "first"
    second = tmp_path / "second"
    second.mkdir()
    (second / "marked.py").write_text(MARKED.replace('CODE = "first"', 'CODE = "second"'))
    invoker.update_function(name, code=str(second))
    assert invoker.call(name, {})["code"] == "second"
    assert invoker.get_function(name).code == str(second)


def test_an_update_during_init_uses_the_new_configuration(
        invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("marked.handler", source=MARKED, env={"MARK": "a"})
    invoker.update_function(name, env={"MARK": "b"})  # the first Init may still run
    assert invoker.call(name, {})["mark"] == "b"


def test_an_update_is_validated_and_refused_whole(
        invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("marked.handler", source=MARKED, env={"MARK": "a"})
    with pytest.raises(ValidationException, match="at 'timeout'"):
        invoker.update_function(name, timeout_s=901, env={"MARK": "b"})
    with pytest.raises(InvalidParameterValueException, match="put_function_concurrency"):
        invoker.update_function(name, reserved_concurrency=3)
    with pytest.raises(InvalidParameterValueException, match="FunctionConfig fields"):
        invoker.update_function(name, colour="blue")
    assert invoker.get_function(name).env == {"MARK": "a"}
    assert invoker.call(name, {})["mark"] == "a"


def test_reserved_concurrency_can_be_put_and_deleted(
        invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("echo.handler")
    assert invoker.call(name, 1) == 1
    invoker.put_function_concurrency(name, 0)
    assert invoker.get_function(name).reserved_concurrency == 0
    with pytest.raises(TooManyRequestsException) as raised:
        invoker.invoke(name, 2)
    assert raised.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
    invoker.delete_function_concurrency(name)
    assert invoker.get_function(name).reserved_concurrency is None
    assert invoker.call(name, 3) == 3
    assert invoker.meter(name)["throttles"] == 1


def test_the_account_keeps_100_unreserved(invoker: Invoker,
                                          make_function: MakeFunction) -> None:
    first, second = make_function("echo.handler"), make_function("echo.handler")
    invoker.put_function_concurrency(first, 500)
    invoker.put_function_concurrency(first, 600)  # its own reservation is replaced
    with pytest.raises(InvalidParameterValueException,
                       match=r"below its minimum value of \[100\]"):
        invoker.put_function_concurrency(second, 301)
    invoker.put_function_concurrency(second, 300)
    with pytest.raises(ValidationException, match="greater than or equal to 0"):
        invoker.put_function_concurrency(second, -1)


def test_a_reservation_changed_mid_invocation_keeps_the_account_count(
        make_invoker: Any, make_function: MakeFunction) -> None:
    invoker = make_invoker(account_limit=101)
    name = make_function("sleeper.handler", invoker=invoker, timeout_s=10)
    with notify_socket() as (sock, path):
        thread, _ = call_in_thread(invoker, name, {"seconds": 0.5, "notify": path})
        sock.recv(64)
        invoker.put_function_concurrency(name, 1)  # counted unreserved, ends reserved
        thread.join()
        thread, _ = call_in_thread(invoker, name, {"seconds": 0.5, "notify": path})
        sock.recv(64)
        invoker.delete_function_concurrency(name)  # counted reserved, ends unreserved
        thread.join()
    # The count of unreserved executions in flight, which throttling compares with the
    # account limit, is back at zero: no capacity was lost or invented.
    assert invoker._admission.active_unreserved == 0
