"""CloudWatch metric filters: the log store counts what they match as it stores the
events, and they are kept in the state directory."""

from __future__ import annotations

from pathlib import Path

from fastinvoke.logstore import LogEntry, LogStore
from fastinvoke.metricfilters import MetricFilter, MetricFilters, MetricTransformation


def test_the_log_store_counts_what_its_filters_match_and_keeps_them(tmp_path: Path) -> None:
    path = str(tmp_path / "metric_filters.json")
    filters = MetricFilters(path)
    filters.put(MetricFilter("errors", "/group", [MetricTransformation(
        "Errors", "App", "1", default_value=0)], "ERROR"))
    with LogStore(tmp_path / "logs.db", metric_filters=filters) as store:
        store.append("/group", "stream", [LogEntry(1, "r1", "ERROR one\nfine\n")])
        store.append("/other", "stream", [LogEntry(1, "r2", "ERROR elsewhere\n")])
        store.flush()
    [(series, count, total, low, high)] = filters.snapshot()
    assert (series.filter_name, series.metric, count, total, low, high) == (
        "errors", "Errors", 2, 1, 0, 1)
    assert [kept.filter_name for kept in MetricFilters(path).describe("/group")] == ["errors"]

