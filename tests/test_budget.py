"""The host memory budget: workers' memory limits never add up past it; invocations wait
and idle workers of other functions make room."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from helpers import MakeFunction, MakeInvoker, wait_until

from fastinvoke.errors import TooManyRequestsException


def committed_mb(invoker) -> int:
    return invoker._supervisor.budget.committed_mb


def test_an_idle_worker_of_another_function_makes_room(make_invoker: MakeInvoker,
                                                       make_function: MakeFunction) -> None:
    invoker = make_invoker(memory_budget_mb=256)
    first, second, third = (make_function("pid.handler", invoker=invoker) for _ in range(3))
    pids = {name: invoker.call(name, {}) for name in (first, second)}
    assert committed_mb(invoker) == 256

    pids[third] = invoker.call(third, {})  # the least recently used worker (first's) goes

    assert committed_mb(invoker) <= 256
    assert invoker.call(second, {}) == pids[second]  # still warm
    assert invoker.call(first, {}) != pids[first]  # a new worker: its old one was stopped


def test_invocations_wait_for_a_busy_worker_to_end_rather_than_exceed_the_budget(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    invoker = make_invoker(memory_budget_mb=128)
    gate = make_function("gate.handler", invoker=invoker, timeout_s=60)
    other = make_function("ok.handler", invoker=invoker)
    opened = tmp_path / "open"
    holder = threading.Thread(target=invoker.invoke, args=(gate, {"gate": str(opened)}))
    holder.start()
    results = []
    try:
        wait_until(lambda: invoker.meter(gate)["concurrent"] == 1)
        with caplog.at_level(logging.WARNING, logger="fastinvoke"):
            waiter = threading.Thread(target=lambda: results.append(invoker.invoke(other, {})))
            waiter.start()
            wait_until(lambda: "host memory budget (128 MB)" in caplog.text)
        assert not results and committed_mb(invoker) == 128
    finally:
        opened.touch()
        holder.join()
    waiter.join()
    assert results[0].function_error is None
    assert committed_mb(invoker) <= 128


def test_a_function_bigger_than_the_budget_is_refused_with_what_to_do(
        make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    invoker = make_invoker(memory_budget_mb=200)
    name = make_function("ok.handler", invoker=invoker, memory_mb=256)
    with pytest.raises(TooManyRequestsException,
                       match=r"needs 256 MB, more than the host memory budget of 200 MB"):
        invoker.invoke(name, {})


@pytest.mark.parametrize(("settings", "message"), [
    ({"max_workers": 0}, "max_workers must be at least 1, not 0"),
    ({"memory_budget_mb": 64}, "memory_budget_mb must be at least 128"),
])
def test_impossible_limits_are_refused(settings: dict, message: str) -> None:
    from fastinvoke import Invoker
    from fastinvoke.errors import ValidationException
    with pytest.raises(ValidationException, match=message):
        Invoker(**settings)
