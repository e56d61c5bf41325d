"""Billing presets, prices, the free tier, and bills built from ``_core.Meter`` snapshots.

``classic`` (the default) bills in 100 ms units and does not bill Init, the model this
product was specified with; ``current`` bills in 1 ms units and bills Init on a cold
start, as AWS does since August 2025.  Sums stay integers until a bill is made, and a
bill is exact: ``Decimal`` all the way, never a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from ._core import Meter
from .errors import InvalidParameterValueException
from .jsonfile import save_json

PRESETS: dict[str, tuple[int, bool]] = {"classic": (100, False), "current": (1, True)}

# Outcomes as _core.Meter.record counts them.
SUCCESS, FUNCTION_ERROR, TIMEOUT, OUT_OF_MEMORY, CRASH = range(5)

FREE_REQUESTS = 1_000_000  # a month, shared by every function and architecture
FREE_GB_SECONDS = Decimal(400_000)
_MB_MS_PER_GB_S = Decimal(1024 * 1000)


class Prices(msgspec.Struct, frozen=True):
    """One architecture's prices (us-east-1).  ``tiers``: (GB-seconds a month up to
    which the price applies, or None for the rest; price per GB-second)."""

    per_request: Decimal
    tiers: tuple[tuple[Decimal | None, Decimal], ...]


PRICES: dict[str, Prices] = {
    "x86_64": Prices(Decimal("0.0000002"), (
        (Decimal(6_000_000_000), Decimal("0.0000166667")),
        (Decimal(15_000_000_000), Decimal("0.000015")),
        (None, Decimal("0.0000133334")),
    )),
    "arm64": Prices(Decimal("0.0000002"), (
        (Decimal(7_500_000_000), Decimal("0.0000133334")),
        (Decimal(18_750_000_000), Decimal("0.0000120001")),
        (None, Decimal("0.0000106667")),
    )),
}


class FunctionBill(msgspec.Struct, frozen=True):
    function: str
    architecture: str
    requests: int
    gb_seconds: Decimal
    cost: Decimal  # before the free tier, which applies to the account's total


class Bill(msgspec.Struct, frozen=True):
    functions: list[FunctionBill]
    requests: int
    gb_seconds: Decimal
    free_requests: int
    free_gb_seconds: Decimal
    gross_cost: Decimal
    cost: Decimal  # after the free tier


def new_meter(preset: str) -> Meter:
    """A meter billing with ``preset`` (``classic`` or ``current``)."""
    try:
        granularity_ms, bill_init = PRESETS[preset]
    except KeyError:
        raise InvalidParameterValueException(
            f"Unknown billing preset '{preset}': use one of {', '.join(PRESETS)}"
        ) from None
    return Meter(granularity_ms, bill_init)


def snapshot(meter: Meter) -> dict[str, Any]:
    """The meter's counters plus GB-seconds, exact (``Decimal``)."""
    figures = meter.snapshot()
    figures["gb_seconds"] = Decimal(figures["mb_ms"]) / _MB_MS_PER_GB_S
    return figures


def duration_cost(gb_seconds: Decimal, prices: Prices) -> Decimal:
    """The price of ``gb_seconds`` in a month, tier by tier."""
    cost, below = Decimal(0), Decimal(0)
    for limit, price in prices.tiers:
        top = gb_seconds if limit is None else min(gb_seconds, limit)
        if top > below:
            cost += (top - below) * price
            below = top
    return cost


def make_bill(usage: list[tuple[str, str, int, int]],
              prices: dict[str, Prices] | None = None) -> Bill:
    """A month's bill for ``(function, architecture, requests, mb_ms)`` rows.

    The free tier (1,000,000 requests and 400,000 GB-seconds) is shared: it comes off
    the total, the duration part from the cheapest tier first as AWS applies it.
    """
    prices = PRICES if prices is None else prices
    lines = []
    per_arch: dict[str, Decimal] = {}
    requests = 0
    for function, architecture, count, mb_ms in usage:
        gb_s = Decimal(mb_ms) / _MB_MS_PER_GB_S
        table = prices[architecture]
        lines.append(FunctionBill(function, architecture, count, gb_s,
                                  count * table.per_request + duration_cost(gb_s, table)))
        per_arch[architecture] = per_arch.get(architecture, Decimal(0)) + gb_s
        requests += count
    gb_seconds = sum(per_arch.values(), Decimal(0))
    free_requests = min(requests, FREE_REQUESTS)
    free_left = min(gb_seconds, FREE_GB_SECONDS)
    free_gb_seconds = free_left
    cost = Decimal(0)
    for architecture, gb_s in sorted(per_arch.items()):
        taken = min(gb_s, free_left)
        free_left -= taken
        table = prices[architecture]
        # The free GB-seconds replace the first (most expensive) tier's.
        cost += duration_cost(gb_s, table) - duration_cost(taken, table)
    request_price = next(iter(prices.values())).per_request
    cost += (requests - free_requests) * request_price
    return Bill(lines, requests, gb_seconds, free_requests, free_gb_seconds,
                sum((line.cost for line in lines), Decimal(0)), cost)


class Usage(msgspec.Struct):
    """A function's counters as kept in the state directory between runs."""

    architecture: str
    memory_mb: int
    counters: dict[str, int]


_usage_decoder = msgspec.json.Decoder(dict[str, Usage])


def load_usage(path: str) -> dict[str, Usage]:
    """The usage saved in ``path`` (``meters.json``), or nothing when there is none yet."""
    try:
        with open(path, "rb") as file:
            return _usage_decoder.decode(file.read())
    except FileNotFoundError:
        return {}
    except msgspec.DecodeError as exc:
        raise InvalidParameterValueException(
            f"{path} is not a fastinvoke meter file ({exc}); move it away to start afresh"
        ) from None


def save_usage(path: str, usage: dict[str, Usage]) -> None:
    """Write ``usage`` atomically (a crash leaves the previous file whole)."""
    save_json(path, usage)


def bill_usage(usage: dict[str, Usage], prices: dict[str, Prices] | None = None) -> Bill:
    """``make_bill`` over saved usage."""
    return make_bill([(name, item.architecture, item.counters.get("invocations", 0),
                       item.counters.get("mb_ms", 0)) for name, item in usage.items()], prices)
