"""``invoke_many`` / ``ainvoke_many``: batches streamed through a function's workers, each
invocation still Lambda's own (request id, meters, log lines, error in place)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from helpers import MakeFunction, MakeInvoker, log_of, report_of

from fastinvoke import Invoker
from fastinvoke.errors import InvalidRequestContentException, TooManyRequestsException

PICKY = """\
import os


def handler(event, context):
    if event.get("raise"):
        raise ValueError(f"refused {event['n']}")
    if event.get("exit"):
        os._exit(3)
    print(f"line {event['n']}")
    return {"n": event["n"], "pid": os.getpid()}
"""


def test_results_come_back_in_order_each_metered_and_logged(
        make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    invoker = make_invoker(max_workers=2)
    name = make_function("picky.handler", invoker=invoker, source=PICKY)
    events = [{"n": n} for n in range(500)]
    results = invoker.invoke_many(name, events)
    assert [json.loads(r.payload)["n"] for r in results] == list(range(500))
    assert all(r.status_code == 200 and r.function_error is None for r in results)
    assert len({r.request_id for r in results}) == 500
    assert len({json.loads(r.payload)["pid"] for r in results}) == 2  # both workers served
    meter = invoker.meter(name)
    assert meter["invocations"] == 500 and meter["errors"] == 0
    assert meter["cold_starts"] == 2
    for n in (0, 137, 499):  # each has its own START ... REPORT and its own output
        text = log_of(invoker, name, results[n].request_id)
        assert text is not None and f"line {n}\n" in text
        assert text.startswith(f"START RequestId: {results[n].request_id}")
        report_of(text)
    assert sum(1 for _ in invoker.logs(name)) == 500


def test_errors_stay_in_place(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("picky.handler", source=PICKY)
    events = [{"n": n, "raise": n % 7 == 3, "exit": n == 20} for n in range(40)]
    results = invoker.invoke_many(name, events)
    for n, result in enumerate(results):
        document = json.loads(result.payload)
        if n == 20:  # its worker died: that invocation alone fails, the pool heals
            assert result.function_error == "Unhandled"
            assert document["errorType"] == "Runtime.ExitError"
            assert result.request_id in document["errorMessage"]
        elif n % 7 == 3:
            assert result.function_error == "Unhandled"
            assert document["errorType"] == "ValueError"
            assert document["errorMessage"] == f"refused {n}"
        else:
            assert result.function_error is None and document["n"] == n
    assert invoker.meter(name)["errors"] == 1 + sum(1 for n in range(40) if n % 7 == 3)


def test_a_bad_event_is_refused_before_any_runs(invoker: Invoker,
                                                make_function: MakeFunction) -> None:
    name = make_function("picky.handler", source=PICKY)
    with pytest.raises(InvalidRequestContentException, match="^event 2: "):
        invoker.invoke_many(name, [{"n": 0}, {"n": 1}, b"{not json", {"n": 3}])
    assert invoker.meter(name)["invocations"] == 0
    assert invoker.invoke_many(name, []) == []


def test_a_batch_keeps_within_reserved_concurrency(invoker: Invoker,
                                                   make_function: MakeFunction) -> None:
    name = make_function("picky.handler", source=PICKY, reserved_concurrency=1)
    results = invoker.invoke_many(name, [{"n": n} for n in range(50)], concurrency=8)
    assert [json.loads(r.payload)["n"] for r in results] == list(range(50))
    meter = invoker.meter(name)
    assert meter["peak_concurrent"] == 1 and meter["throttles"] == 0
    none = make_function("picky.handler", source=PICKY, reserved_concurrency=0)
    with pytest.raises(TooManyRequestsException):
        invoker.invoke_many(none, [{"n": 0}])
    assert invoker.meter(none)["invocations"] == 0


def test_ainvoke_many_on_a_running_loop(make_invoker: MakeInvoker,
                                        make_function: MakeFunction) -> None:
    invoker = make_invoker(max_workers=2)
    name = make_function("picky.handler", invoker=invoker, source=PICKY)

    async def main() -> list[list[int]]:
        batches = [invoker.ainvoke_many(name, [{"n": 100 * b + n} for n in range(100)])
                   for b in range(3)]
        return [[json.loads(r.payload)["n"] for r in results]
                for results in await asyncio.gather(*batches)]

    assert asyncio.run(main()) == [[100 * b + n for n in range(100)] for b in range(3)]
    assert invoker.meter(name)["invocations"] == 300


def test_event_batches_queue_each_and_dry_runs_only_validate(
        invoker: Invoker, make_function: MakeFunction, tmp_path: os.PathLike[str]) -> None:
    name = make_function("picky.handler", source=PICKY)
    queued = invoker.invoke_many(name, [{"n": n} for n in range(10)], invocation_type="Event")
    assert [r.status_code for r in queued] == [202] * 10
    assert invoker.wait_for_events(name, timeout_s=30)
    assert invoker.meter(name)["invocations"] == 10
    dry = invoker.invoke_many(name, [{"n": 0}], invocation_type="DryRun")
    assert [r.status_code for r in dry] == [204]
    assert invoker.meter(name)["invocations"] == 10


def test_a_reply_before_the_loop_watches_still_wakes_it(invoker: Invoker,
                                                       make_function: MakeFunction) -> None:
    """``ainvoke`` sends, then starts watching: a reply published in between rang no
    doorbell, so the loop must take its own last look.  Missing it leaves the call to the
    supervisor's sweep, a second later: each call here must end well before that (a check
    of a lost wake-up, not of speed: a warm call takes well under a millisecond)."""
    name = make_function("picky.handler", source=PICKY)

    async def calls() -> list[int]:
        out = []
        for n in range(200):
            result = await asyncio.wait_for(invoker.ainvoke(name, {"n": n}), timeout=0.5)
            out.append(json.loads(result.payload)["n"])
        return out

    assert asyncio.run(calls()) == list(range(200))
