"""``GET /metrics``: the Invoker's meters and bill in Prometheus' text format.

Per function, read from ``Invoker.meter`` at each scrape (exact counters, never sampled):
invocations, errors, throttles, timeouts, out-of-memory kills, cold starts, billed
duration, GB-seconds, concurrency now and at peak, workers by node (a Ray node id, or
``local``), and the handler's duration as a
summary (p50/p90/p99 from the meter's histogram).  The front-end's own view of a
synchronous call — from the request read to the result in hand — is a histogram by
function.  The bill (``Invoker.bill``: AWS prices, free tier) is a set of gauges.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..errors import ResourceNotFoundException
from ..invoker import Invoker

_COUNTERS = (  # meter key, metric name, help
    ("invocations", "fastinvoke_invocations", "Invocations run (Lambda's Invocations metric)"),
    ("errors", "fastinvoke_errors", "Invocations that ended in a function error"),
    ("throttles", "fastinvoke_throttles", "Synchronous invocations refused with a 429"),
    ("timeouts", "fastinvoke_timeouts", "Invocations killed at their timeout"),
    ("oom_kills", "fastinvoke_oom_kills", "Invocations killed for exceeding their memory"),
    ("cold_starts", "fastinvoke_cold_starts", "Invocations that ran in a new worker"),
    ("billed_ms", "fastinvoke_billed_duration_milliseconds", "Billed duration"),
)
_QUANTILES = (("0.5", "p50_us"), ("0.9", "p90_us"), ("0.99", "p99_us"))
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """One registry per server (several servers may share a process in tests)."""

    def __init__(self, invoker: Invoker) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_InvokerCollector(invoker))
        self.invoke_seconds = Histogram(
            "fastinvoke_http_invoke_seconds",
            "Synchronous Invoke over HTTP: request read to response written, by function",
            ["function"], registry=self.registry,
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30,
                     60, 300, 900),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _InvokerCollector(Collector):
    def __init__(self, invoker: Invoker) -> None:
        self.invoker = invoker

    def collect(self) -> Iterator[Metric]:
        counters = {key: CounterMetricFamily(name, text, labels=["function"])
                    for key, name, text in _COUNTERS}
        gb_seconds = CounterMetricFamily("fastinvoke_gb_seconds", "Billed GB-seconds",
                                         labels=["function"])
        concurrent = GaugeMetricFamily("fastinvoke_concurrent_executions",
                                       "Invocations running now", labels=["function"])
        peak = GaugeMetricFamily("fastinvoke_concurrent_executions_peak",
                                 "Most invocations running at once", labels=["function"])
        workers = GaugeMetricFamily("fastinvoke_workers",
                                    "Workers placed, by node (a Ray node id, or local)",
                                    labels=["function", "node"])
        duration = Metric("fastinvoke_duration_seconds",
                          "Handler duration measured in the worker", "summary")
        for label, name, qualifier in _pools(self.invoker):
            try:
                figures = self.invoker.meter(name, qualifier)
                placement = self.invoker.placement(name, qualifier)
            except ResourceNotFoundException:
                continue  # deleted while this scrape ran
            labels = [label]
            for key, family in counters.items():
                family.add_metric(labels, figures[key])
            gb_seconds.add_metric(labels, float(figures["gb_seconds"]))
            concurrent.add_metric(labels, figures["concurrent"])
            peak.add_metric(labels, figures["peak_concurrent"])
            for node, count in placement.items():
                workers.add_metric([label, node], count)
            for quantile, key in _QUANTILES:
                duration.add_sample("fastinvoke_duration_seconds",
                                    {"function": label, "quantile": quantile},
                                    figures[key] / 1e6)
            duration.add_sample("fastinvoke_duration_seconds_count",
                                {"function": label}, figures["invocations"])
            duration.add_sample("fastinvoke_duration_seconds_sum", {"function": label},
                                figures["duration_ns"] / 1e9)
        yield from counters.values()
        yield from (gb_seconds, concurrent, peak, workers, duration)
        yield from _bill(self.invoker)
        yield from _emf(self.invoker)
        yield from _metric_filters(self.invoker)


def _pools(invoker: Invoker) -> Iterator[tuple[str, str, str | None]]:
    """(label, function, qualifier) of every function and published version: a version
    is labelled ``name:N``, as Lambda's ``Resource`` dimension names it."""
    for config in invoker.list_functions():
        yield config.name, config.name, None
        try:
            versions = invoker.list_versions(config.name)
        except ResourceNotFoundException:
            continue
        for version in versions:
            number = version.config.version
            yield f"{config.name}:{number}", config.name, number


def _emf(invoker: Invoker) -> Iterator[Metric]:
    """The metrics functions logged in the Embedded Metric Format: a summary per series
    (its log group, namespace, metric, unit and dimensions as labels)."""
    series, invalid = invoker.emf_metrics()
    yield _summary("fastinvoke_emf", "Metrics functions logged in CloudWatch's Embedded "
                   "Metric Format", [({}, *row) for row in series])
    refused = CounterMetricFamily("fastinvoke_emf_invalid_lines",
                                  "Log lines with _aws that are not valid EMF (kept as logs)",
                                  labels=["log_group"])
    for group, count in invalid.items():
        refused.add_metric([group], count)
    yield refused


def _metric_filters(invoker: Invoker) -> Iterator[Metric]:
    """What CloudWatch metric filters published from the log events: a summary per
    series (its log group, filter, namespace, metric, unit and dimensions as labels)."""
    yield _summary("fastinvoke_metric_filter", "Metrics CloudWatch metric filters published "
                   "from the functions' log events",
                   [({"filter": one.filter_name}, one, *figures)
                    for one, *figures in invoker.metric_filter_metrics()])


def _summary(name: str, text: str,
             rows: list[tuple[dict[str, str], Any, int, float, float, float]]) -> Metric:
    """A summary (count and sum) per series: ``rows`` of (labels of its own, series with
    log_group, namespace, metric, unit and dimensions, count, sum, min, max)."""
    summary = Metric(name, text, "summary")
    for own, one, count, total, _, _ in rows:
        labels = {"log_group": one.log_group, **own, "namespace": one.namespace,
                  "metric": one.metric, "unit": one.unit,
                  **{_label(dimension): value for dimension, value in one.dimensions}}
        summary.add_sample(f"{name}_count", labels, count)
        summary.add_sample(f"{name}_sum", labels, total)
    return summary


def _label(name: str) -> str:
    """A dimension's name as a Prometheus label (letters, digits, _; not a leading digit
    nor a name of ours)."""
    label = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    label = "_" + label if label[:1].isdigit() or not label else label
    return "dim_" + label if label in ("log_group", "filter", "namespace", "metric",
                                       "unit") else label


def _bill(invoker: Invoker) -> Iterator[Metric]:
    bill = invoker.bill()
    cost = GaugeMetricFamily("fastinvoke_bill_function_usd",
                             "What the function's invocations would cost, before the free tier",
                             labels=["function"])
    for line in bill.functions:
        cost.add_metric([line.function], float(line.cost))
    yield cost
    for name, text, value in (
        ("fastinvoke_bill_requests", "Requests billed this month", bill.requests),
        ("fastinvoke_bill_gb_seconds", "GB-seconds billed this month", bill.gb_seconds),
        ("fastinvoke_bill_gross_usd", "The bill before the free tier", bill.gross_cost),
        ("fastinvoke_bill_usd", "The bill after the free tier (AWS us-east-1 prices)",
         bill.cost),
    ):
        yield GaugeMetricFamily(name, text, value=float(value))
