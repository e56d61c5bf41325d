"""fastinvoke._core on the hot path: what one invocation costs the dispatcher and meter."""

from __future__ import annotations

from typing import Any

import pytest

from fastinvoke._core import Dispatcher, Meter, billed_ms

WORKER = b"add.1"
REQUEST_ID = "8f2c7e1a-3b4d-4e5f-9a6b-7c8d9e0f1a2b"


@pytest.fixture
def dispatcher() -> Dispatcher:
    core = Dispatcher()
    core.add_worker(WORKER, "add")
    return core


def test_dispatch_cycle(benchmark: Any, dispatcher: Dispatcher) -> None:
    """pop_idle + begin + finish: the bookkeeping of one warm invocation."""
    entry = object()

    def cycle() -> object:
        worker = dispatcher.pop_idle("add")
        dispatcher.begin(REQUEST_ID, worker, 1, entry)
        return dispatcher.finish(REQUEST_ID, worker)

    assert benchmark(cycle) is entry
    dispatcher.next_deadline()  # the heap filled with ended requests: they must drain
    assert dispatcher.in_flight == 0


def test_add_and_drop_worker(benchmark: Any, dispatcher: Dispatcher) -> None:
    """A worker's arrival (Hello) and departure (recycle, exit)."""

    def churn() -> object:
        dispatcher.add_worker(b"add.2", "add")
        return dispatcher.drop_worker(b"add.2")

    assert benchmark(churn) is None


def test_pop_idle_empty(benchmark: Any) -> None:
    """The miss that sends an invocation to the queue."""
    assert benchmark(Dispatcher().pop_idle, "add") is None


def test_meter_record(benchmark: Any) -> None:
    meter = Meter(100, False)
    assert benchmark(meter.record, 1_234_567, 0, 128, 0, False) == 100


def test_meter_record_cold(benchmark: Any) -> None:
    meter = Meter(1, True)
    assert benchmark(meter.record, 1_234_567, 250_000_000, 1024, 0, True) == 252


def test_billed_ms(benchmark: Any) -> None:
    assert benchmark(billed_ms, 1_234_567, 100) == 100
