"""Billing presets and the figures built from a function's ``_core.Meter``.

``classic`` (the default) bills in 100 ms units and does not bill Init, the model this
product was specified with; ``current`` bills in 1 ms units and bills Init on a cold
start, as AWS does since August 2025.  Sums stay integers until they are printed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ._core import Meter
from .errors import InvalidParameterValueException

PRESETS: dict[str, tuple[int, bool]] = {"classic": (100, False), "current": (1, True)}

# Outcomes as _core.Meter.record counts them.
SUCCESS, FUNCTION_ERROR, TIMEOUT, OUT_OF_MEMORY, CRASH = range(5)


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
    figures["gb_seconds"] = Decimal(figures["mb_ms"]) / Decimal(1024 * 1000)
    return figures
