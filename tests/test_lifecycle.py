"""Workers' lifetimes: kept warm for a while, then stopped; provisioned ones kept ready."""

from __future__ import annotations

import os

from conftest import MakeFunction, MakeInvoker
from helpers import alive, descendants, wait_until


def test_an_idle_worker_is_stopped_after_the_keep_warm_time(
        make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    invoker = make_invoker(keep_warm_s=0.3)
    name = make_function("pid.handler", invoker=invoker)
    first = invoker.call(name, {})
    wait_until(lambda: not alive(first), timeout=10, message="the idle worker was not stopped")
    second = invoker.call(name, {})
    assert second != first
    assert invoker.meter(name)["cold_starts"] == 2


def test_provisioned_workers_are_ready_before_any_invocation(
        make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    invoker = make_invoker(keep_warm_s=0.2)
    before = descendants(os.getpid())
    name = make_function("context_dump.handler", invoker=invoker, provisioned=2)
    # The template and its two provisioned workers start with no invocation at all.
    wait_until(lambda: len(descendants(os.getpid()) - before) == 3, timeout=20,
               message=lambda: f"processes: {descendants(os.getpid()) - before}")
    seen = invoker.call(name, {})
    assert seen["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    assert invoker.meter(name)["cold_starts"] == 1
    # Provisioned workers are never stopped for being idle.
    workers = descendants(os.getpid()) - before
    invoker.call(name, {})
    assert descendants(os.getpid()) - before == workers
