"""The dashboard of ``fastinvoke serve`` in a real browser (Debian's chromium, driven by
Playwright): under load its figures move, pushed by the server, and settle on what
``/metrics`` says, and so does a metric filter's count; the log tail shows the chosen
function's lines through a CloudWatch filter; a screenshot is kept in the test's directory."""

from __future__ import annotations

import shutil
import threading
import urllib.request
from pathlib import Path

import boto3
import pytest
from http_server import serving
from prometheus_client.parser import text_string_to_metric_families

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is not installed: pip install -e '.[test]'")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on the PATH: "
                                "apt-get install -y chromium (.ci/run does)")


def _invocations(url: str, function: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return next(sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "fastinvoke_invocations_total"
                and sample.labels == {"function": function})


def test_the_dashboard_shows_live_figures_and_logs(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        client = server.client()
        boto3.client("logs", endpoint_url=server.url, region_name="us-east-1",
                     aws_access_key_id="local", aws_secret_access_key="local").put_metric_filter(
            logGroupName="/aws/lambda/printer", filterName="dashboard-lines",
            filterPattern='"dashboard line"', metricTransformations=[{
                "metricName": "Lines", "metricNamespace": "Dashboard", "metricValue": "1"}])
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                client.invoke(FunctionName="printer", Payload=b'{"message": "dashboard line"}')

        loader = threading.Thread(target=load)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(server.url + "/")
                page.wait_for_selector("text=live")
                loader.start()
                cell = 'tr[data-function="printer"] td:nth-child(3)'
                page.wait_for_selector(cell)
                first = int(page.text_content(cell))
                page.wait_for_function(
                    f"document.querySelector('{cell}').textContent > {first + 5}")
                stop.set()
                loader.join()
                # Once the load stops, the page settles on what /metrics counts.
                expected = int(_invocations(server.url, "printer"))
                page.wait_for_function(
                    f"document.querySelector('{cell}').textContent == '{expected}'",
                    timeout=10_000)
                rate = float(page.text_content('tr[data-function="printer"] td:nth-child(2)'))
                assert rate >= 0
                # The metric filter's row counts the printed lines and the warnings.
                filtered = '#metric-filters tbody tr td:nth-child(7)'
                page.wait_for_function(
                    f"document.querySelector('{filtered}')?.textContent == '{2 * expected}'",
                    timeout=10_000)
                assert page.text_content('#metric-filters tbody tr td:nth-child(2)') == \
                    "dashboard-lines"
                page.fill("#filter", '"dashboard line"')
                page.click('tr[data-function="printer"]')
                page.wait_for_function(
                    "document.querySelector('#logs').textContent.includes('dashboard line')",
                    timeout=10_000)
                assert "REPORT" not in page.text_content("#logs")  # filtered
                assert page.locator("#charts canvas").count() >= 2  # uPlot drew them
                page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            finally:
                stop.set()
                if loader.is_alive():
                    loader.join()
                browser.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
