"""Logs metrics with Powertools' Metrics (CloudWatch's Embedded Metric Format), and a few
lines that only look like EMF."""

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

metrics = Metrics(namespace="Shop", service="orders")


@metrics.log_metrics
def handler(event, context):
    metrics.add_dimension(name="region", value="eu")
    metrics.add_metric(name="Orders", unit=MetricUnit.Count, value=event.get("orders", 1))
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=12.5)
    print('{"_aws": "not an object"}')
    print('{"_aws": {"CloudWatchMetrics": [{"Namespace": "Shop", "Metrics": [{"Name": "X"}]}]}}')
    print('"_aws" in a line that is not JSON')
    return "ok"
