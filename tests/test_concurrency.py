"""Lambda's throttling: reserved concurrency and the account's limit."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import MakeInvoker, notify_socket, wait_until

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.errors import TooManyRequestsException

FUNCTIONS = str(Path(__file__).resolve().parent / "functions")


def running(invoker: Invoker, name: str, path: str) -> threading.Thread:
    """Start a call of the sleeper that runs 1.5 s (the test waits until it has begun)."""
    call = threading.Thread(target=invoker.call, args=(name, {"seconds": 1.5, "notify": path}))
    call.start()
    return call


@pytest.mark.parametrize("reserved", [0, 1])
def test_reserved_concurrency_throttles_past_its_limit(reserved: int) -> None:
    with Invoker(sandbox=False) as invoker, notify_socket() as (sock, path):
        invoker.create_function(FunctionConfig(name="s", handler="sleeper.handler",
                                               code=FUNCTIONS, reserved_concurrency=reserved,
                                               timeout_s=10))
        calls = []
        for _ in range(reserved):
            calls.append(running(invoker, "s", path))
            sock.recv(64)
        with pytest.raises(TooManyRequestsException) as raised:
            invoker.invoke("s", {})
        assert raised.value.status == 429
        assert raised.value.to_body() == {
            "Type": "User", "message": "Rate Exceeded.",
            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}
        figures = invoker.meter("s")
        assert figures["throttles"] == 1 and figures["invocations"] == 0
        for call in calls:
            call.join()
        if reserved:
            assert invoker.call("s", {})["pid"] > 0  # capacity is back


def test_the_account_limit_throttles_unreserved_functions() -> None:
    with Invoker(account_limit=3, sandbox=False) as invoker, notify_socket() as (sock, path):
        invoker.create_function(FunctionConfig(name="r", handler="sleeper.handler",
                                               code=FUNCTIONS, reserved_concurrency=1,
                                               timeout_s=10))
        invoker.create_function(FunctionConfig(name="u", handler="sleeper.handler",
                                               code=FUNCTIONS, timeout_s=10))
        calls = [running(invoker, "u", path), running(invoker, "u", path)]
        sock.recv(64)
        sock.recv(64)
        # 3 - 1 reserved = 2 unreserved, both in use; the reserved one is still free.
        with pytest.raises(TooManyRequestsException) as raised:
            invoker.invoke("u", {})
        assert raised.value.reason == "ConcurrentInvocationLimitExceeded"
        assert invoker.call("r", {})["pid"] > 0
        for call in calls:
            call.join()
        assert invoker.meter("u")["throttles"] == 1


def test_an_admitted_invocation_still_runs_when_the_reservation_goes_to_zero(
        make_invoker: MakeInvoker, tmp_path: Path) -> None:
    """Admitted while its function's first worker was still to be forked, then the
    reservation set to 0: that invocation runs (its worker is forked), the next is
    throttled, as Lambda's in-flight invocations finish when the reservation changes."""
    invoker = make_invoker()
    invoker.create_function(FunctionConfig(name="gated", handler="gate.handler", code=FUNCTIONS,
                                           reserved_concurrency=1))
    gate = tmp_path / "gate"
    answers: list[Any] = []
    holder = threading.Thread(target=lambda: answers.append(
        invoker.invoke("gated", {"gate": str(gate)})))
    holder.start()
    wait_until(lambda: invoker._functions.pool("gated").active == 1)  # admitted, waiting
    invoker.put_function_concurrency("gated", 0)
    with pytest.raises(TooManyRequestsException):
        invoker.invoke("gated", {"gate": str(gate)})
    gate.touch()
    holder.join(timeout=30)
    assert not holder.is_alive(), "the admitted invocation never ran"
    assert answers[0].payload == b'"through"'
