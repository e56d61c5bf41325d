"""Metrics that functions log in CloudWatch's Embedded Metric Format: real Powertools
output through a real ``serve``, on ``/metrics``; lines that only look like EMF stay log
lines and are counted."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path

import pytest
from helpers import function_resource
from http_server import serving
from prometheus_client.parser import text_string_to_metric_families

pytest.importorskip("aws_lambda_powertools",
                    reason="Powertools is not installed: pip install -e '.[test]'")


def test_powertools_metrics_reach_the_metrics_endpoint(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource("Shop", "shop",
                                                           "powertools_metrics.handler"))
    with serving(tmp_path, template=template) as server:
        client = server.client()
        for orders in (1, 2, 3):
            payload = client.invoke(FunctionName="shop", Payload=f'{{"orders": {orders}}}')
            assert payload["Payload"].read() == b'"ok"'
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as answer:
            text = answer.read().decode()
        samples = {(sample.name, sample.labels.get("metric")): sample
                   for family in text_string_to_metric_families(text)
                   for sample in family.samples if sample.name.startswith("fastinvoke_emf")}
        orders = samples[("fastinvoke_emf_sum", "Orders")]
        assert orders.value == 6
        assert orders.labels == {"log_group": "/aws/lambda/shop", "namespace": "Shop",
                                 "metric": "Orders", "unit": "Count", "service": "orders",
                                 "region": "eu"}
        assert samples[("fastinvoke_emf_count", "Orders")].value == 3
        assert samples[("fastinvoke_emf_sum", "Latency")].labels["unit"] == "Milliseconds"
        assert samples[("fastinvoke_emf_sum", "Latency")].value == 3 * 12.5
        # Three lines an invocation claim _aws and are not EMF: kept in the log, counted.
        assert samples[("fastinvoke_emf_invalid_lines_total", None)].value == 9
        # The dashboard's figures carry them too.
        with urllib.request.urlopen(server.url + "/dashboard/events", timeout=10) as events:
            document = json.loads(events.readline().removeprefix(b"data: "))
        shown = {m["metric"]: m for m in document["emf"]["metrics"]}
        assert (shown["Orders"]["count"], shown["Orders"]["sum"]) == (3, 6)
        assert shown["Orders"]["dimensions"] == {"service": "orders", "region": "eu"}
        assert document["emf"]["invalid_lines"] == 9
        tail = client.invoke(FunctionName="shop", Payload=b"{}", LogType="Tail")["LogResult"]
        assert '"_aws" in a line that is not JSON' in base64.b64decode(tail).decode()
