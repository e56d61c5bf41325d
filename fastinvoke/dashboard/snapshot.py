"""What the dashboard shows, once a second: each function's (and version's) figures and
the bill so far, as one JSON document."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from ..errors import ResourceNotFoundException
from ..invoker import Invoker


def snapshot(invoker: Invoker) -> dict[str, Any]:
    bill = invoker.bill()
    cost = {line.function: line.cost for line in bill.functions}
    functions = []
    for config in invoker.list_functions(all_versions=True):
        name, qualifier = config.name, (None if config.version == "$LATEST"
                                        else config.version)
        try:
            figures = invoker.meter(name, qualifier)
            workers = sum(invoker.placement(name, qualifier).values())
        except ResourceNotFoundException:
            continue  # deleted meanwhile
        functions.append({
            "name": config.qualified_name, "invocations": figures["invocations"],
            "errors": figures["errors"], "throttles": figures["throttles"],
            "p50_ms": figures["p50_us"] / 1000, "p99_ms": figures["p99_us"] / 1000,
            "concurrent": figures["concurrent"], "peak": figures["peak_concurrent"],
            "cold_starts": figures["cold_starts"], "workers": workers,
            "memory_mb": config.memory_mb,
            "memory_used_mb": -(-invoker.memory_peak_kb(name, qualifier) // 1024),
            "cost_usd": _usd(cost.get(config.qualified_name, Decimal(0))),
        })
    series, invalid = invoker.emf_metrics()
    return {"time_ms": time.time_ns() // 1_000_000, "functions": functions,
            "bill": {"gross_usd": _usd(bill.gross_cost), "usd": _usd(bill.cost)},
            "emf": {"metrics": [_figures(*row) for row in series],
                    "invalid_lines": sum(invalid.values())},
            "metric_filters": [{"filter": row[0].filter_name, **_figures(*row)}
                               for row in invoker.metric_filter_metrics()]}


def _figures(one: Any, count: int, total: float, low: float, high: float) -> dict[str, Any]:
    """A metric series (EMF's or a metric filter's) and its count, sum, min and max."""
    return {"log_group": one.log_group, "namespace": one.namespace, "metric": one.metric,
            "unit": one.unit, "dimensions": dict(one.dimensions), "count": count,
            "sum": total, "min": low, "max": high}


def _usd(amount: Decimal) -> str:
    """An exact amount as plain decimal text ("0.00019232", "0"), never "0E-7"."""
    return format(amount.normalize(), "f")
