"""A run's summary as text for people or as one JSON object for machines."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .recorder import Summary
from .runner import Plan

# A rate the target could not keep up with is worth a word: below this share of the
# asked rate the run measured the target's ceiling, not latency at that rate.
RATE_SHORTFALL = 0.95


def as_dict(summary: Summary, plan: Plan, function: str, target: str) -> dict[str, Any]:
    return {
        "function": function,
        "target": target,
        "mode": plan.mode,
        "concurrency": plan.concurrency,
        "rate": plan.rate,
        "batch": plan.batch,
        **asdict(summary),
    }


def shortfall(summary: Summary, plan: Plan) -> str | None:
    """Why an open-loop run did not reach its rate, and what to do, or None."""
    if plan.rate is None or summary.throughput >= RATE_SHORTFALL * plan.rate:
        return None
    return (f"the target answered {summary.throughput:,.0f}/s of the {plan.rate:,.0f}/s asked: "
            f"the latencies include the queue that built up; raise --concurrency (now "
            f"{plan.concurrency}) or lower --rate to measure latency at a rate it sustains")


def as_text(summary: Summary, plan: Plan, function: str, target: str) -> str:
    flight = (f"{plan.concurrency}" if plan.batch == 1 else
              f"{plan.concurrency} batch{'es' if plan.concurrency > 1 else ''} of {plan.batch}")
    loop = (f"closed loop, {flight} in flight" if plan.rate is None else
            f"open loop at {plan.rate:,g}/s, up to {flight} in flight")
    lat = summary.latency_us
    lines = [
        f"fastinvoke bench {function}: {target}; {loop}; {summary.elapsed_s:.2f} s",
        f"  requests    {summary.requests:,} ({summary.errors:,} errors)",
        f"  throughput  {summary.throughput:,.1f} requests/s",
        "  latency     " + "  ".join(
            f"{name} {_duration(lat[key])}" for name, key in
            (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"), ("max", "max"))),
    ]
    if plan.rate is not None:
        lines.append("              (measured from each request's intended send time)")
    if plan.batch > 1:
        lines.append("              (each invocation timed as its batch: from its start to "
                     "its end)")
    for title, counts in (("function errors", summary.function_errors),
                          ("throttles (429)", summary.throttles),
                          ("service errors", summary.service_errors)):
        if counts:
            lines.append(f"  {title}: " + ", ".join(
                f"{label} {count:,}" for label, count in sorted(counts.items())))
    if note := shortfall(summary, plan):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _duration(us: float) -> str:
    if us >= 1_000_000:
        return f"{us / 1e6:.2f} s"
    if us >= 1000:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.0f} µs"
