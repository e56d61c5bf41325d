"""Metrics that functions log in CloudWatch's Embedded Metric Format (what Powertools'
``Metrics`` prints): a JSON line whose ``_aws.CloudWatchMetrics`` directives name the
metrics (and their units) among its members, with the dimension sets to record them
under (Amazon CloudWatch User Guide, "Specification: Embedded metric format").

The log store's writer hands each invocation's output here; a line that claims to be EMF
and is not valid is left as a log line and counted, never raised.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

_MARK = b'"_aws"'
_MAX_METRICS = 100
_MAX_DIMENSIONS = 30
_MAX_VALUES = 100


class Series(NamedTuple):
    log_group: str
    namespace: str
    metric: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]


class Stats:
    __slots__ = ("count", "total", "low", "high")

    def __init__(self) -> None:
        self.count, self.total = 0, 0.0
        self.low, self.high = float("inf"), float("-inf")

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)


class Tally:
    """Stats by series, for callers that hold their own lock (EMF's, metric filters')."""

    def __init__(self) -> None:
        self.stats: dict[Any, Stats] = {}

    def add(self, points: Iterable[tuple[Any, float]]) -> None:
        for series, value in points:
            stats = self.stats.get(series)
            if stats is None:
                stats = self.stats[series] = Stats()
            stats.add(value)

    def rows(self) -> list[tuple[Any, int, float, float, float]]:
        """(series, count, sum, min, max) of each series."""
        return [(series, s.count, s.total, s.low, s.high) for series, s in self.stats.items()]


class Invalid(ValueError):
    """A line that claims to be EMF (it has ``_aws``) and breaks the specification."""


class EmfMetrics:
    """Every EMF metric of the functions' log lines, by series (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.series = Tally()
        self.invalid: dict[str, int] = {}  # log group -> lines refused

    def read(self, log_group: str, output: bytes) -> None:
        """Take the metrics of ``output``'s EMF lines (cheap for output without any)."""
        if _MARK not in output:
            return
        for line in output.split(b"\n"):
            if _MARK not in line:
                continue
            try:
                samples = _samples(log_group, json.loads(line))
            except (Invalid, ValueError, RecursionError):  # (deeply nested JSON)
                with self._lock:
                    self.invalid[log_group] = self.invalid.get(log_group, 0) + 1
                continue
            with self._lock:
                self.series.add(samples)

    def snapshot(self) -> tuple[list[tuple[Series, int, float, float, float]], dict[str, int]]:
        """(series, count, sum, min, max) of each series, and the refused lines by group."""
        with self._lock:
            return self.series.rows(), dict(self.invalid)


def _samples(log_group: str, document: Any) -> list[tuple[Series, float]]:
    """The (series, value) pairs of an EMF document, or ``Invalid``: all or none."""
    if not isinstance(document, dict):
        raise Invalid("not a JSON object")
    directives = _field(document.get("_aws"), dict, "_aws").get("CloudWatchMetrics")
    samples = []
    for directive in _field(directives, list, "_aws.CloudWatchMetrics"):
        _field(directive, dict, "a metric directive")
        namespace = _field(directive.get("Namespace"), str, "Namespace")
        if not 1 <= len(namespace) <= 1024:
            raise Invalid("Namespace must have 1 to 1024 characters")
        metrics = _field(directive.get("Metrics"), list, "Metrics")
        dimension_sets = _field(directive.get("Dimensions", [[]]), list, "Dimensions")
        if len(metrics) > _MAX_METRICS:
            raise Invalid(f"at most {_MAX_METRICS} metrics a directive")
        for names in dimension_sets:
            if len(_field(names, list, "a dimension set")) > _MAX_DIMENSIONS:
                raise Invalid(f"at most {_MAX_DIMENSIONS} dimensions a set")
        for metric in metrics:
            name = _field(_field(metric, dict, "a metric").get("Name"), str, "a metric's Name")
            unit = _field(metric.get("Unit", "None"), str, "a metric's Unit")
            values = document.get(name)
            values = values if isinstance(values, list) else [values]
            if not 1 <= len(values) <= _MAX_VALUES or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise Invalid(f"the value of {name} must be a number or up to "
                              f"{_MAX_VALUES} numbers")
            for names in dimension_sets:
                dimensions = tuple((dimension, _field(document.get(dimension), str,
                                                      f"dimension {dimension}"))
                                   for dimension in names)
                series = Series(log_group, namespace, name, unit, dimensions)
                samples += [(series, float(value)) for value in values]
    return samples


def _field(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise Invalid(f"{what} must be a {kind.__name__}")
    return value
