"""CloudWatch metric filters: the log store counts what they match as it stores the
events; written in the state directory, they count the log events of real invocations
once ``serve`` starts, on ``/metrics`` and in the dashboard's figures."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from helpers import function_resource
from http_server import Server, serving
from prometheus_client.parser import text_string_to_metric_families

from fastinvoke.logstore import LogEntry, LogStore
from fastinvoke.metricfilters import MetricFilter, MetricFilters, MetricTransformation


def write_template(directory: Path) -> Path:
    template = directory / "template.yaml"
    template.write_text("Resources:\n" + function_resource("Lines", "lines", "lines.handler")
                        + function_resource("Json", "jsonlog", "json_logger.handler"))
    return template


def filter_samples(server: Server) -> dict[tuple[str, str], Any]:
    """/metrics' metric filter samples by (sample name, filter)."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {(sample.name, sample.labels["filter"]): sample
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name.startswith("fastinvoke_metric_filter")}


def print_lines(server: Server, *lines: str) -> None:
    answer = server.client().invoke(FunctionName="lines",
                                    Payload=json.dumps({"lines": list(lines)}))
    assert answer["Payload"].read() == str(len(lines)).encode()


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


def test_filters_written_in_the_state_directory_count_once_serve_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "metric_filters.json").write_text(json.dumps({"metricFilters": [
        {"filterName": "errors", "logGroupName": "/aws/lambda/lines", "filterPattern": "ERROR",
         "metricTransformations": [{"metricName": "Errors", "metricNamespace": "App",
                                    "metricValue": "1"}]},
        {"filterName": "slow", "logGroupName": "/aws/lambda/jsonlog",
         "filterPattern": "{ $.latency > 100 }", "metricTransformations": [{
             "metricName": "Slow", "metricNamespace": "App", "metricValue": "$.latency",
             "unit": "Milliseconds", "dimensions": {"Level": "$.level"}}]}]}))
    with serving(tmp_path, template=write_template(tmp_path)) as server:
        print_lines(server, "ERROR one", "fine", "ERROR two")
        for latency in (50, 150, 250):
            assert server.client().invoke(FunctionName="jsonlog", Payload=json.dumps(
                {"latency": latency, "level": "WARN"}))["Payload"].read() == b'"logged"'
        samples = filter_samples(server)
        errors = samples[("fastinvoke_metric_filter_count", "errors")]
        assert errors.value == 2
        assert errors.labels == {"log_group": "/aws/lambda/lines", "filter": "errors",
                                 "namespace": "App", "metric": "Errors", "unit": "None"}
        slow = samples[("fastinvoke_metric_filter_sum", "slow")]
        assert (slow.value, slow.labels["Level"], slow.labels["unit"]) == (
            400, "WARN", "Milliseconds")
        assert samples[("fastinvoke_metric_filter_count", "slow")].value == 2
        with urllib.request.urlopen(server.url + "/dashboard/events", timeout=10) as events:
            document = json.loads(events.readline().removeprefix(b"data: "))
        shown = {row["filter"]: row for row in document["metric_filters"]}
        assert (shown["errors"]["count"], shown["errors"]["sum"]) == (2, 2)
        assert (shown["slow"]["min"], shown["slow"]["max"]) == (150, 250)
        assert shown["slow"]["dimensions"] == {"Level": "WARN"}

