"""CloudWatch metric filters: put with the real CLI (to the server running on the state
directory, or into the state directory when none runs) and with boto3's ``logs`` client,
they count the log events of real invocations on ``/metrics`` and the dashboard's
figures, survive a restart, and refuse what CloudWatch refuses."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from helpers import function_resource
from http_server import ROOT, Server, serving
from prometheus_client.parser import text_string_to_metric_families

from fastinvoke.logstore import LogEntry, LogStore
from fastinvoke.metricfilters import MetricFilter, MetricFilters, MetricTransformation


def fastinvoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastinvoke", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def write_template(directory: Path) -> Path:
    template = directory / "template.yaml"
    template.write_text("Resources:\n" + function_resource("Lines", "lines", "lines.handler")
                        + function_resource("Json", "jsonlog", "json_logger.handler"))
    return template


def logs_client(server: Server) -> Any:
    return boto3.client("logs", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local",
                        config=Config(retries={"max_attempts": 0}))


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


def put_errors_filter(state: Path, name: str, pattern: str) -> subprocess.CompletedProcess[str]:
    return fastinvoke("logs", "metric-filter", "put", "lines", "--state-dir", str(state),
                      "--filter-name", name, "--filter-pattern", pattern, "--metric-name",
                      "Errors", "--metric-namespace", "App")


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


def test_the_cli_puts_filters_that_count_matching_lines_and_survive_a_restart(
        tmp_path: Path) -> None:
    template, state = write_template(tmp_path), tmp_path / "state"
    with serving(tmp_path, template=template) as server:
        put = put_errors_filter(state, "errors", "ERROR")  # found by its server.json
        assert put.returncode == 0, put.stderr
        assert f"put on /aws/lambda/lines (the server at {server.url})" in put.stderr
        refused = put_errors_filter(state, "broken", "{ $.level = }")
        assert refused.returncode == 2
        assert "InvalidParameterException: Invalid metric filter pattern" in refused.stderr
        print_lines(server, "ERROR one", "fine", "ERROR two")
        print_lines(server, "ERROR three")
        print_lines(server, "fine")
        samples = filter_samples(server)
        assert samples[("fastinvoke_metric_filter_count", "errors")].value == 3
        assert samples[("fastinvoke_metric_filter_sum", "errors")].value == 3
        listed = fastinvoke("logs", "metric-filter", "list", "lines", "--state-dir", str(state))
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[1].split() == \
            ["/aws/lambda/lines", "errors", "ERROR", "App/Errors", "1"]
    # No server runs: the filter goes into the state directory, for the next one.
    offline = put_errors_filter(state, "warnings", '"WARN"')
    assert offline.returncode == 0, offline.stderr
    assert "the next `fastinvoke serve` there counts" in offline.stderr
    with serving(tmp_path, template=template) as server:
        described = logs_client(server).describe_metric_filters(logGroupName="/aws/lambda/lines")
        assert [f["filterName"] for f in described["metricFilters"]] == ["errors", "warnings"]
        print_lines(server, "ERROR again", "WARN once")
        samples = filter_samples(server)
        assert samples[("fastinvoke_metric_filter_count", "errors")].value == 1
        assert samples[("fastinvoke_metric_filter_count", "warnings")].value == 1
        deleted = fastinvoke("logs", "metric-filter", "delete", "lines", "--state-dir",
                             str(state), "--filter-name", "errors")
        assert deleted.returncode == 0, deleted.stderr
        assert ("fastinvoke_metric_filter_count", "errors") not in filter_samples(server)
        listed = fastinvoke("logs", "metric-filter", "list", "--state-dir", str(state), "--json")
        assert [f["filterName"] for f in json.loads(listed.stdout)["metricFilters"]] == [
            "warnings"]


def test_values_dimensions_and_default_values(tmp_path: Path) -> None:
    with serving(tmp_path, template=write_template(tmp_path)) as server:
        logs = logs_client(server)
        logs.put_metric_filter(
            logGroupName="/aws/lambda/jsonlog", filterName="latency",
            filterPattern="{ $.latency > 0 }", metricTransformations=[{
                "metricName": "Latency", "metricNamespace": "App", "metricValue": "$.latency",
                "unit": "Milliseconds", "dimensions": {"Level": "$.level"}}])
        logs.put_metric_filter(  # a value that is no number gives no datapoint
            logGroupName="/aws/lambda/jsonlog", filterName="tagged",
            filterPattern='{ $.message = "tagged" }', metricTransformations=[{
                "metricName": "Tagged", "metricNamespace": "App", "metricValue": "$.tags[0]"}])
        logs.put_metric_filter(
            logGroupName="/aws/lambda/lines", filterName="bytes",
            filterPattern="[ip, user, status = 5*, bytes]", metricTransformations=[{
                "metricName": "Bytes", "metricNamespace": "Web", "metricValue": "$bytes",
                "dimensions": {"Status": "$status"}}])
        logs.put_metric_filter(  # every other event of the group counts 0
            logGroupName="/aws/lambda/lines", filterName="errors", filterPattern="ERROR",
            metricTransformations=[{"metricName": "Errors", "metricNamespace": "Web",
                                    "metricValue": "1", "defaultValue": 0}])
        client = server.client()
        for event in ({"latency": 10, "level": "INFO"}, {"latency": 30, "level": "ERROR"},
                      {"latency": 5, "level": "INFO"}, {"latency": 0, "level": "INFO"},
                      {"message": "tagged", "tags": [7]}, {"message": "tagged", "tags": ["x"]}):
            assert client.invoke(FunctionName="jsonlog",
                                 Payload=json.dumps(event))["Payload"].read() == b'"logged"'
        print_lines(server, "1.2.3.4 bob 503 1200", "1.2.3.4 amy 200 99",
                    "5.6.7.8 bob 500 300", "ERROR no bytes")
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as answer:
            text = answer.read().decode()
        samples = {(s.name, s.labels["metric"], s.labels.get("Level") or s.labels.get("Status")):
                   s.value for family in text_string_to_metric_families(text)
                   for s in family.samples if s.name.startswith("fastinvoke_metric_filter")}
        assert samples[("fastinvoke_metric_filter_sum", "Latency", "INFO")] == 15
        assert samples[("fastinvoke_metric_filter_count", "Latency", "INFO")] == 2
        assert samples[("fastinvoke_metric_filter_sum", "Latency", "ERROR")] == 30
        assert samples[("fastinvoke_metric_filter_count", "Tagged", None)] == 1
        assert samples[("fastinvoke_metric_filter_sum", "Tagged", None)] == 7
        assert samples[("fastinvoke_metric_filter_sum", "Bytes", "503")] == 1200
        assert samples[("fastinvoke_metric_filter_sum", "Bytes", "500")] == 300
        assert ("fastinvoke_metric_filter_sum", "Bytes", "200") not in samples
        # START, 4 printed lines, END and REPORT: 7 events, one of them an ERROR.
        assert samples[("fastinvoke_metric_filter_count", "Errors", None)] == 7
        assert samples[("fastinvoke_metric_filter_sum", "Errors", None)] == 1
        assert 'unit="Milliseconds"' in text


def test_with_auth_sigv4_the_logs_api_takes_requests_signed_for_logs(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"AKIDLOGS": "logs-secret"}))
    with serving(tmp_path, "--auth", "sigv4", "--keys", str(keys),
                 template=write_template(tmp_path)) as server:
        def logs(secret: str) -> Any:
            return boto3.client("logs", endpoint_url=server.url, region_name="us-east-1",
                                aws_access_key_id="AKIDLOGS", aws_secret_access_key=secret,
                                config=Config(retries={"max_attempts": 0}))

        logs("logs-secret").put_metric_filter(
            logGroupName="/aws/lambda/lines", filterName="errors", filterPattern="ERROR",
            metricTransformations=[{"metricName": "Errors", "metricNamespace": "App",
                                    "metricValue": "1"}])
        code, _ = _refusal(lambda: logs("wrong").describe_metric_filters())
        assert code == "InvalidSignatureException"
        lambda_signed = boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1",
                                     aws_access_key_id="AKIDLOGS",
                                     aws_secret_access_key="logs-secret")
        assert lambda_signed.list_functions()["Functions"]  # the same keys sign for lambda
        described = logs("logs-secret").describe_metric_filters()["metricFilters"]
        assert [one["filterName"] for one in described] == ["errors"]


def _refusal(call: Any) -> tuple[str, str]:
    with pytest.raises(Exception) as caught:  # botocore's modeled exceptions, by name
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    with serving(tmp_path, template=write_template(tmp_path)) as server:
        logs = logs_client(server)

        def put(name: str = "f", pattern: str = "ERROR", group: str = "/aws/lambda/lines",
                **transformation: Any) -> Any:
            return lambda: logs.put_metric_filter(
                logGroupName=group, filterName=name, filterPattern=pattern,
                metricTransformations=[{"metricName": "M", "metricNamespace": "N",
                                        "metricValue": "1", **transformation}])

        code, message = _refusal(put(pattern="{ $.latency > }"))
        assert code == "InvalidParameterException"
        assert "Invalid metric filter pattern" in message and "expected a value after >" in \
            message
        code, message = _refusal(put(metricValue="$.latency"))
        assert code == "InvalidParameterException" and "Invalid metric value" in message
        code, message = _refusal(put(pattern="[ip, status]", metricValue="$bytes"))
        assert "a field the pattern names (ip, status)" in message
        code, message = _refusal(put(pattern="{ $.a = 1 }", defaultValue=0,
                                     dimensions={"A": "$.a"}))
        assert code == "InvalidParameterException" and "both a defaultValue and dimensions" in \
            message
        code, message = _refusal(put(pattern="{ $.a = 1 }", dimensions={
            name: "$.a" for name in "ABCD"}))
        assert "at most 3 dimensions" in message
        code, message = _refusal(put(name="a:b"))
        assert code == "InvalidParameterException" and "'filterName'" in message
        code, message = _refusal(put(unit="Parsecs"))
        assert "Member must satisfy enum value set" in message
        code, message = _refusal(put(group="/aws/lambda/nobody"))
        assert code == "ResourceNotFoundException" and "/aws/lambda/nobody" in message
        code, message = _refusal(lambda: logs.delete_metric_filter(
            logGroupName="/aws/lambda/lines", filterName="never"))
        assert code == "ResourceNotFoundException" and "'never'" in message
        for number in range(100):
            put(name=f"f{number}")()
        code, message = _refusal(put(name="one-more"))
        assert code == "LimitExceededException" and "delete one first" in message
        put(name="f0", pattern="WARN")()  # replacing one is no new filter
        assert len(logs.describe_metric_filters(
            logGroupName="/aws/lambda/lines", limit=50)["metricFilters"]) == 50
        pages = logs.get_paginator("describe_metric_filters").paginate(
            logGroupName="/aws/lambda/lines")
        assert sum(len(page["metricFilters"]) for page in pages) == 100
        tested = logs.test_metric_filter(filterPattern="[ip, status = 5*]",
                                         logEventMessages=["1.2.3.4 503", "1.2.3.4 200"])
        assert tested["matches"] == [{"eventNumber": 1, "eventMessage": "1.2.3.4 503",
                                      "extractedValues": {"$ip": "1.2.3.4", "$status": "503"}}]
        code, message = _refusal(lambda: logs.put_log_events(
            logGroupName="/aws/lambda/lines", logStreamName="s",
            logEvents=[{"timestamp": 1, "message": "m"}]))
        assert code == "UnknownOperationException" and "PutMetricFilter" in message
        # The CLI says the same, with no server running too.
    done = put_errors_filter(tmp_path / "state", "broken", "[a, b")
    assert done.returncode == 2
    assert "InvalidParameterException: Invalid metric filter pattern" in done.stderr
