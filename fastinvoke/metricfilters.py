"""CloudWatch Logs metric filters (Amazon CloudWatch Logs User Guide, "Creating metrics
from log events using filters" and "Filter pattern syntax for metric filters"; API
Reference: PutMetricFilter, DescribeMetricFilters, DeleteMetricFilter, MetricTransformation).

A filter belongs to a log group and turns each of its log events that the filter pattern
matches into one datapoint of a metric: ``metricValue`` (a number, ``$.field`` of a JSON
pattern or ``$name`` of a space-delimited one: a value that is not a number gives no
datapoint), under ``dimensions`` read the same way; an event it does not match gives
``defaultValue``, if there is one.  Like CloudWatch's, filters see only the events stored
after they were put.

The filters of a state directory are kept in its ``metric_filters.json``, in
DescribeMetricFilters' shape (so it may be written by hand; it is read when the Invoker
starts, and a filter that breaks the rules is reported and left out).  The log store's
writer thread hands each batch of events here as it stores it, as it does to ``emf``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import msgspec

from .emf import Tally
from .filterpatterns import MISSING, Pattern, compile_pattern, selector_path, value
from .jsonfile import load_json, save_json
from .logserrors import InvalidParameterException, LimitExceededException, ResourceNotFoundException

MAX_FILTERS = 100  # a log group's, CloudWatch's quota
MAX_DIMENSIONS = 3
UNITS = ("Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
         "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
         "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
         "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
         "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None")
_GROUP_NAME = re.compile(r"[\.\-_/#A-Za-z0-9]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_log = logging.getLogger(__name__)


class MetricTransformation(msgspec.Struct, rename="camel", omit_defaults=True):
    metric_name: str
    metric_namespace: str
    metric_value: str
    default_value: float | None = None
    dimensions: dict[str, str] = {}
    unit: str | None = None


class MetricFilter(msgspec.Struct, rename="camel", omit_defaults=True):
    filter_name: str
    log_group_name: str
    metric_transformations: list[MetricTransformation]
    filter_pattern: str = ""
    creation_time: int = 0  # Unix ms, set when put


class MetricFilterList(msgspec.Struct, rename="camel"):
    """``metric_filters.json``, and DescribeMetricFilters' answer."""

    metric_filters: list[MetricFilter] = []
    next_token: str | None = None


class Series(NamedTuple):
    log_group: str
    filter_name: str
    namespace: str
    metric: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]


class _Compiled:
    """A filter ready to read events: its pattern and how to get each datapoint."""

    def __init__(self, metric_filter: MetricFilter) -> None:
        self.filter = metric_filter
        self.transformation = transformation = check(metric_filter)
        self.pattern = compile_pattern(metric_filter.filter_pattern)
        self.constant = (float(transformation.metric_value)
                         if _NUMBER.fullmatch(transformation.metric_value) else None)
        self.series = Series(metric_filter.log_group_name, metric_filter.filter_name,
                             transformation.metric_namespace, transformation.metric_name,
                             transformation.unit or "None", ())

    def datapoint(self, message: str) -> tuple[Series, float] | None:
        captures = self.pattern.captures(message)
        if captures is None:
            default = self.transformation.default_value
            return None if default is None else (self.series, float(default))
        number = self.constant if self.constant is not None else _number(
            value(captures, self.transformation.metric_value))
        if number is None:
            return None
        dimensions = []
        for name, selector in self.transformation.dimensions.items():
            text = _text(value(captures, selector))
            if text is None:
                return None  # a datapoint needs every dimension
            dimensions.append((name, text))
        series = self.series if not dimensions else self.series._replace(
            dimensions=tuple(dimensions))
        return series, number


class MetricFilters:
    """The metric filters of a state directory (``path``) and what they have counted
    (thread-safe).  ``group_exists`` says whether a log group may take a filter."""

    def __init__(self, path: str, group_exists: Callable[[str], bool] = lambda group: True
                 ) -> None:
        self.path = path
        self.group_exists = group_exists
        self._lock = threading.Lock()
        self._filters: dict[str, dict[str, _Compiled]] = {}  # group -> name -> filter
        self._tally = Tally()  # by Series
        try:
            saved = load_json(path, MetricFilterList, MetricFilterList())
        except msgspec.DecodeError as exc:
            _log.warning("%s is not a list of metric filters (%s): none applies, and the next "
                         "put or delete rewrites it", path, exc)
            return
        for metric_filter in saved.metric_filters:
            try:
                self._filters.setdefault(metric_filter.log_group_name, {})[
                    metric_filter.filter_name] = _Compiled(metric_filter)
            except InvalidParameterException as exc:
                _log.warning("metric filter %r of %s in %s is left out (and out of the file "
                             "from the next put or delete): %s", metric_filter.filter_name,
                             metric_filter.log_group_name, path, exc)

    def put(self, metric_filter: MetricFilter) -> MetricFilter:
        """Create or replace (by group and name) a filter; CloudWatch's errors if it
        breaks a rule.  The filter as kept (its creation time set) is returned."""
        metric_filter = msgspec.structs.replace(metric_filter,
                                                creation_time=time.time_ns() // 1_000_000)
        compiled = _Compiled(metric_filter)
        group = metric_filter.log_group_name
        if not self.group_exists(group):
            raise ResourceNotFoundException(
                f"The specified log group does not exist: {group}. A function's log group "
                "(/aws/lambda/NAME, or its LoggingConfig's LogGroup) exists once the "
                "function does: create it (or serve its template) on this state directory")
        with self._lock:
            filters = self._filters.get(group, {})
            if metric_filter.filter_name not in filters and len(filters) >= MAX_FILTERS:
                raise LimitExceededException(
                    f"Resource limit exceeded: {group} has {MAX_FILTERS} metric filters, "
                    "CloudWatch's most for a log group; delete one first")
            self._filters[group] = {**filters, metric_filter.filter_name: compiled}
            self._save()
        return metric_filter

    def describe(self, log_group: str | None = None, name_prefix: str | None = None,
                 metric_name: str | None = None,
                 namespace: str | None = None) -> list[MetricFilter]:
        """The filters (of ``log_group``, whose name starts with ``name_prefix``, that
        publish ``metric_name`` in ``namespace``), by group and name."""
        if name_prefix is not None and log_group is None:
            raise InvalidParameterException(
                "If you specify a filterNamePrefix, you must also specify a logGroupName")
        if (metric_name is None) != (namespace is None):
            raise InvalidParameterException(
                "metricName and metricNamespace go together: give both, or neither")
        if log_group is not None and log_group not in self._filters and \
                not self.group_exists(log_group):
            raise ResourceNotFoundException(f"The specified log group does not exist: "
                                            f"{log_group}")
        with self._lock:
            found = [compiled.filter for group, filters in sorted(self._filters.items())
                     if log_group in (None, group) for _, compiled in sorted(filters.items())]
        return [one for one in found
                if one.filter_name.startswith(name_prefix or "") and metric_name in (
                    None, one.metric_transformations[0].metric_name) and namespace in (
                    None, one.metric_transformations[0].metric_namespace)]

    def delete(self, log_group: str, name: str) -> None:
        """Delete a filter and the figures it counted."""
        with self._lock:
            filters = self._filters.get(log_group, {})
            if name not in filters:
                raise ResourceNotFoundException(
                    f"The specified metric filter does not exist: {name!r} on {log_group} "
                    f"(its filters: {', '.join(sorted(filters)) or 'none'})")
            self._filters[log_group] = {key: kept for key, kept in filters.items()
                                        if key != name}
            self._tally.stats = {series: stats for series, stats in self._tally.stats.items()
                                 if (series.log_group, series.filter_name) != (log_group, name)}
            self._save()

    def read(self, group: str, messages: Iterable[str]) -> None:
        """Count the datapoints of ``group``'s new log events (cheap without filters)."""
        filters = self._filters.get(group)
        if not filters:
            return
        points = [point for message in messages for compiled in filters.values()
                  if (point := compiled.datapoint(message)) is not None]
        with self._lock:
            self._tally.add(points)

    def snapshot(self) -> list[tuple[Series, int, float, float, float]]:
        """(series, count, sum, min, max) of each series a filter has published."""
        with self._lock:
            return self._tally.rows()

    def _save(self) -> None:
        save_json(self.path, MetricFilterList([compiled.filter for _, filters in sorted(
            self._filters.items()) for _, compiled in sorted(filters.items())]))


def check(metric_filter: MetricFilter) -> MetricTransformation:
    """``metric_filter``'s one transformation, or CloudWatch's InvalidParameterException
    saying which member breaks which rule."""
    _member(metric_filter.log_group_name, "logGroupName", 512, _GROUP_NAME)
    _member(metric_filter.filter_name, "filterName", 512, re.compile(r"[^:*]*"))
    if len(metric_filter.filter_pattern) > 1024:
        raise _constraint(metric_filter.filter_pattern, "filterPattern",
                          "Member must have length less than or equal to 1024")
    try:
        pattern = compile_pattern(metric_filter.filter_pattern)
    except ValueError as exc:
        raise InvalidParameterException(f"Invalid metric filter pattern: {exc}") from None
    if len(metric_filter.metric_transformations) != 1:
        raise _constraint(len(metric_filter.metric_transformations), "metricTransformations",
                          "Member must have length equal to 1 (one transformation a filter)")
    transformation = metric_filter.metric_transformations[0]
    for member, text in (("metricName", transformation.metric_name),
                         ("metricNamespace", transformation.metric_namespace)):
        _member(text, f"metricTransformations.1.member.{member}", 255,
                re.compile(r"[^:*$]*"))
    if len(transformation.metric_value) > 100 or not (
            _NUMBER.fullmatch(transformation.metric_value)
            or _selects(pattern, transformation.metric_value)):
        raise InvalidParameterException(
            f"Invalid metric value {transformation.metric_value!r} for filter pattern "
            f"{metric_filter.filter_pattern!r}: give a number (1 counts the matching events), "
            + _selectors(pattern))
    if transformation.default_value is not None and not math.isfinite(
            transformation.default_value):
        raise InvalidParameterException("defaultValue must be a finite number")
    if transformation.dimensions and transformation.default_value is not None:
        raise InvalidParameterException(
            "A metric transformation cannot have both a defaultValue and dimensions: drop "
            "one of them")
    if len(transformation.dimensions) > MAX_DIMENSIONS:
        raise InvalidParameterException(
            f"A metric transformation has at most {MAX_DIMENSIONS} dimensions, not "
            f"{len(transformation.dimensions)}")
    for name, selector in transformation.dimensions.items():
        if not 1 <= len(name) <= 255 or not _selects(pattern, selector):
            raise InvalidParameterException(
                f"Invalid dimension {name!r}: {selector!r} for filter pattern "
                f"{metric_filter.filter_pattern!r}: a dimension's name has 1 to 255 "
                "characters and its value is " + _selectors(pattern))
    if transformation.unit is not None and transformation.unit not in UNITS:
        raise _constraint(transformation.unit, "metricTransformations.1.member.unit",
                          f"Member must satisfy enum value set: [{', '.join(UNITS)}]")
    return transformation


def _selects(pattern: Pattern, selector: str) -> bool:
    """Whether ``selector`` names a value of what ``pattern`` matches."""
    if pattern.kind == "json":
        try:
            selector_path(selector)
        except ValueError:
            return False
        return True
    return pattern.kind == "space-delimited" and selector[1:] in pattern.names and \
        selector.startswith("$")


def _selectors(pattern: Pattern) -> str:
    if pattern.kind == "json":
        return "a selector of the JSON pattern such as $.latency"
    if pattern.kind == "space-delimited":
        return f"$NAME of a field the pattern names ({', '.join(sorted(pattern.names))})"
    return "or a field of a JSON pattern { ... } or a space-delimited one [a, b, ...]"


def _member(text: str, member: str, longest: int, allowed: re.Pattern[str]) -> None:
    if not 1 <= len(text) <= longest:
        raise _constraint(text, member, f"Member must have length between 1 and {longest}")
    if not allowed.fullmatch(text):
        raise _constraint(text, member, "Member must satisfy regular expression pattern: "
                          + allowed.pattern)


def _constraint(found: Any, member: str, rule: str) -> InvalidParameterException:
    return InvalidParameterException(
        f"1 validation error detected: Value '{found}' at '{member}' failed to satisfy "
        f"constraint: {rule}")


def _number(found: Any) -> float | None:
    """A datapoint's value: a JSON number or a numeric text; None otherwise."""
    if isinstance(found, bool) or found is MISSING:
        return None
    if isinstance(found, int | float):
        return float(found)
    if isinstance(found, str) and _NUMBER.fullmatch(found.strip()):
        return float(found)
    return None


def _text(found: Any) -> str | None:
    """A dimension's value: a string or number as text; None for anything else."""
    if isinstance(found, str):
        return found
    if isinstance(found, bool):
        return "true" if found else "false"
    if isinstance(found, int | float):
        return str(found)
    return None
