"""Meters and bills: exact counters, Lambda's rounding, GB-seconds, prices, free tier."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.metering import FREE_GB_SECONDS, PRICES, duration_cost, make_bill

FUNCTIONS = str(Path(__file__).resolve().parent / "functions")
BILLED = re.compile(r"\tDuration: ([\d.]+) ms\tBilled Duration: (\d+) ms\t")


def report_of(invoker: Invoker, name: str) -> tuple[float, int]:
    match = BILLED.search(invoker.logs(name)[-1].message)
    assert match, invoker.logs(name)[-1].message
    return float(match.group(1)), int(match.group(2))


def invoke_from_64_callers(invoker: Invoker, name: str, events: Iterable[Any]) -> int:
    """Invoke ``name`` with each of ``events`` from 64 asyncio callers at once (well within
    the account's 1,000), checking that none fails; how many were invoked."""
    events = iter(events)
    done = 0

    async def caller() -> None:
        nonlocal done
        for event in events:
            result = await invoker.ainvoke(name, event)
            assert result.function_error is None
            done += 1

    async def drive() -> None:
        await asyncio.gather(*[caller() for _ in range(64)])

    asyncio.run(drive())
    return done


@pytest.mark.parametrize(("billing", "unit"), [("classic", 100), ("current", 1)])
def test_a_known_duration_is_billed_to_the_next_unit(billing: str, unit: int) -> None:
    with Invoker(billing=billing) as invoker:
        # 1,769 MB is one whole vCPU: the CPU quota never stretches the busy loop.
        invoker.create_function(FunctionConfig(name="busy", handler="busy.handler",
                                               code=FUNCTIONS, memory_mb=1769))
        invoker.call("busy", {"ms": 1})  # the cold start (Init billed under "current")
        cold = invoker.meter("busy")["billed_ms"]
        for ms in (30, 130):
            invoker.call("busy", {"ms": ms})
            duration, billed = report_of(invoker, "busy")
            assert duration >= ms
            assert billed % unit == 0 and billed - unit < duration <= billed
        figures = invoker.meter("busy")
        assert figures["invocations"] == 3 and figures["cold_starts"] == 1
        warm_billed = figures["billed_ms"] - cold
        assert figures["mb_ms"] == 1769 * figures["billed_ms"]
        assert figures["gb_seconds"] == Decimal(1769 * figures["billed_ms"]) / (1024 * 1000)
        if billing == "classic":
            assert cold == 100 and warm_billed == 100 + 200
        else:  # Init billed: the cold start costs more than its own 1 ms of handler time
            assert cold >= 2 and figures["init_ns"] > 0


@pytest.mark.slow
def test_counters_are_exact_after_100000_invocations() -> None:
    count = 100_000
    with Invoker(max_workers=2) as invoker:
        invoker.create_function(FunctionConfig(name="echo", handler="echo.handler",
                                               code=FUNCTIONS, memory_mb=1024))
        events = ({"n": n} for n in range(1, count + 1))
        assert invoke_from_64_callers(invoker, "echo", events) == count
        figures = invoker.meter("echo")
        assert figures["invocations"] == count and figures["errors"] == 0
        assert figures["billed_ms"] == 100 * count  # every one under 100 ms
        assert figures["mb_ms"] == 1024 * 100 * count
        assert figures["gb_seconds"] == Decimal(10_000)  # 1 GB x 0.1 s x 100,000, exactly
        assert figures["concurrent"] == 0 and 1 <= figures["peak_concurrent"] <= 2
        # Run back to back (sent ahead to busy workers), an echo may take under 1 us.
        assert figures["duration_ns"] > 0
        assert 0 <= figures["p50_us"] <= figures["p90_us"] <= figures["p99_us"]


def test_the_bill_applies_prices_tiers_and_the_free_tier() -> None:
    x86 = PRICES["x86_64"]
    # 2,000,000 requests of 1 GB for 1 s: 2,000,000 GB-s, all in the first tier.
    bill = make_bill([("f", "x86_64", 2_000_000, 2_000_000 * 1024 * 1000)])
    assert bill.requests == 2_000_000 and bill.gb_seconds == Decimal(2_000_000)
    assert bill.free_requests == 1_000_000 and bill.free_gb_seconds == FREE_GB_SECONDS
    expected = (Decimal(1_000_000) * Decimal("0.0000002")
                + Decimal(1_600_000) * Decimal("0.0000166667"))
    assert bill.cost == expected
    assert bill.functions[0].cost == 2_000_000 * x86.per_request + 2_000_000 * Decimal(
        "0.0000166667")
    # Tiers: past 6 billion GB-s the price drops by 10 %, past 15 billion by 20 %.
    assert duration_cost(Decimal(7_000_000_000), x86) == (
        Decimal(6_000_000_000) * Decimal("0.0000166667")
        + Decimal(1_000_000_000) * Decimal("0.000015"))
    # Within the free tier nothing is owed.
    small = make_bill([("a", "x86_64", 10, 10 * 128 * 100), ("b", "arm64", 5, 5 * 512 * 100)])
    assert small.cost == 0 and small.gross_cost > 0


def test_log_retention_is_validated_and_applied(tmp_path: Path) -> None:
    from fastinvoke.errors import InvalidParameterValueException

    with Invoker(tmp_path) as invoker:
        invoker.create_function(FunctionConfig(name="echo", handler="echo.handler",
                                               code=FUNCTIONS))
        invoker.call("echo", {})
        with pytest.raises(InvalidParameterValueException, match="CloudWatch allows"):
            invoker.set_log_retention("echo", 2)
        invoker.set_log_retention("echo", 1)
        assert len(invoker.logs("echo")) == 1
        purged = invoker._ledger.store.purge(now_ms=(2**41))  # far in the future: all expired
        assert purged == 3 and invoker.logs("echo") == []  # START, END, REPORT


def test_every_printed_line_is_stored_under_load() -> None:
    count = 2000
    with Invoker(max_workers=2) as invoker:
        invoker.create_function(FunctionConfig(name="printer", handler="printer.handler",
                                               code=FUNCTIONS, memory_mb=1769))
        events = ({"message": f"line-{n}"} for n in range(count))
        assert invoke_from_64_callers(invoker, "printer", events) == count
        printed = invoker.log_events("printer", pattern="line-")
        prints = {e.message for e in printed if e.message.startswith("line-")}
        warnings = [e for e in printed if e.message.startswith("[WARNING]\t")]
        assert prints == {f"line-{n}\n" for n in range(count)}
        assert len(warnings) == count
        # Each line carries the request id of the invocation that printed it.
        assert all(w.message.split("\t")[2] == w.request_id for w in warnings)
