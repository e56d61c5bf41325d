"""``fastinvoke bench`` run as a user runs it: against functions embedded from a SAM
template, and against a real HTTP server speaking Lambda's Invoke route."""

from __future__ import annotations

import html.parser
import json
import os
import pty
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from frontends import zmq_endpoint
from helpers import FUNCTIONS, MakeFunction

from fastinvoke import Invoker
from fastinvoke.errors import ServiceError
from fastinvoke.loadgen import plot
from fastinvoke.loadgen.recorder import FUNCTION, Failure, Recorder

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "template.yaml"
ADD_EVENT = '{"value1": 1, "value2": 2}'
PERCENTILES = ("p50", "p90", "p99", "p999", "max")


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore::RuntimeWarning")
    return subprocess.run([sys.executable, "-m", "fastinvoke", "bench", *args],
                          capture_output=True, text=True, env=env, timeout=90)


def bench_json(*args: str) -> dict[str, Any]:
    done = bench(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def check_shape(report: dict[str, Any], requests: int) -> None:
    assert report["requests"] == requests
    assert report["throughput"] > 0
    latency = [report["latency_us"][p] for p in PERCENTILES]
    assert latency == sorted(latency) and latency[0] > 0, report["latency_us"]


def template(tmp_path: Path, **functions: dict[str, Any]) -> Path:
    """A SAM template of functions from tests/functions: name -> extra properties."""
    lines = ["Resources:"]
    for name, props in functions.items():
        lines += [f"  {name}:", "    Type: AWS::Serverless::Function", "    Properties:",
                  f"      FunctionName: {name}", f"      CodeUri: {FUNCTIONS}"]
        lines += [f"      {key}: {value}" for key, value in props.items()]
    path = tmp_path / "template.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- embedded -----------------------------------------------------------------------------

def test_closed_loop_on_an_embedded_function_reports_json_and_a_png(tmp_path: Path) -> None:
    png = tmp_path / "run.png"
    report = bench_json("add", "--template", str(EXAMPLES), "--payload", ADD_EVENT,
                        "--requests", "300", "--concurrency", "2", "--warmup", "20",
                        "--plot", str(png))
    check_shape(report, 300)
    assert report["errors"] == 0
    assert (report["mode"], report["concurrency"], report["rate"]) == ("closed", 2, None)
    assert report["function_errors"] == report["service_errors"] == report["throttles"] == {}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = pytest.importorskip("matplotlib.image").imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 500


def test_function_errors_are_counted_apart(tmp_path: Path) -> None:
    path = template(tmp_path, boom={"Handler": "raise_.handler"})
    report = bench_json("boom", "--template", str(path), "--requests", "50")
    check_shape(report, 50)
    assert report["errors"] == 50
    assert report["function_errors"] == {"Unhandled": 50}
    assert report["service_errors"] == report["throttles"] == {}


def test_text_report_and_payload_from_a_file(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(ADD_EVENT)
    done = bench("add", "--template", str(EXAMPLES), "--payload", f"@{event}",
                 "--requests", "100")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("fastinvoke bench add: embedded")
    assert "requests    100 (0 errors)" in done.stdout
    assert all(f" {p} " in lines[3] for p in ("p50", "p90", "p99", "p99.9", "max"))
    # No progress bar when stderr is not a terminal; only fastinvoke's own warnings (such
    # as a machine that cannot sandbox functions) may be there.
    assert [line for line in done.stderr.splitlines()
            if not line.startswith("fastinvoke: ")] == []


def test_a_terminal_gets_a_live_progress_bar() -> None:
    controller, terminal = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="100")
    try:
        with subprocess.Popen(
                [sys.executable, "-m", "fastinvoke", "bench", "add", "--template", str(EXAMPLES),
                 "--payload", ADD_EVENT, "--duration", "1.5"],
                stdout=subprocess.PIPE, stderr=terminal, env=env) as proc:
            os.close(terminal)
            shown = b""
            while chunk := _read_terminal(controller):
                shown += chunk
            out, _ = proc.communicate(timeout=60)
    finally:
        os.close(controller)
    assert proc.returncode == 0
    assert b"bench" in shown and b" requests, 0 errors, " in shown, shown
    assert out.decode().startswith("fastinvoke bench add: embedded")


def _read_terminal(fd: int) -> bytes:
    """What the program wrote to its terminal, or b"" once it closed it."""
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: every writer closed the terminal
        return b""


@pytest.mark.parametrize(("args", "message"), [
    (["--endpoint", "ftp://127.0.0.1:1"], "give http://HOST:PORT (the Invoke API)"),
    (["--template", str(EXAMPLES), "--plot", "run.txt"], "ending in .png or .html"),
    (["--template", str(EXAMPLES), "--concurrency", "0"], "--concurrency must be at least 1"),
    (["--template", str(EXAMPLES), "--payload", "{bad"],
     "the first call failed: InvalidRequestContentException; check"),
    (["--endpoint", "http://127.0.0.1:9"], "cannot connect to http://127.0.0.1:9"),
])
def test_bad_input_gets_a_clear_error(args: list[str], message: str) -> None:
    done = bench("add", *args, "--requests", "5")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_a_batch_run_counts_each_invocation_as_a_request() -> None:
    report = bench_json("add", "--template", str(EXAMPLES), "--payload", ADD_EVENT,
                        "--batch", "8", "--requests", "64")
    check_shape(report, 64)
    assert (report["errors"], report["batch"], report["concurrency"]) == (0, 8, 1)


def test_batches_over_the_zeromq_endpoint(invoker: Invoker, make_function: MakeFunction,
                                          tmp_path: Path) -> None:
    name = make_function("add.handler")
    boom = make_function("raise_.handler")
    with zmq_endpoint(invoker, f"ipc://{tmp_path}/zmq") as served:
        report = bench_json(name, "--endpoint", served.address, "--batch", "8",
                            "--requests", "60", "--concurrency", "2",
                            "--payload", '{"a": 1, "b": 2}')
        failing = bench_json(boom, "--endpoint", served.address, "--batch", "4",
                             "--requests", "8")
    check_shape(report, 64)  # rounded up to whole batches
    assert report["errors"] == 0
    assert invoker.meter(name)["invocations"] == 8 + 64  # the first call (a batch), the run
    assert failing["function_errors"] == {"Unhandled": 8}


def test_http_has_no_batch() -> None:
    done = bench("add", "--endpoint", "http://127.0.0.1:9", "--batch", "8", "--requests", "8")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "--batch: Lambda's HTTP Invoke API takes one event per request; drop --batch" \
        in done.stderr


def test_zeromq_endpoint(invoker: Invoker, make_function: MakeFunction,
                         tmp_path: Path) -> None:
    name = make_function("add.handler")
    with zmq_endpoint(invoker, f"ipc://{tmp_path}/zmq") as served:
        report = bench_json(name, "--endpoint", served.address, "--requests", "300",
                            "--concurrency", "8", "--payload", '{"a": 1, "b": 2}')
    check_shape(report, 300)
    assert report["errors"] == 0
    assert invoker.meter(name)["invocations"] >= 300


# -- HTTP ---------------------------------------------------------------------------------

class InvokeRoute(BaseHTTPRequestHandler):
    """POST /2015-03-31/functions/NAME/invocations, answered by a real Invoker the way
    Lambda answers it (function errors in a header, service errors as HTTP errors)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK wait
    invoker: Invoker

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        parts = self.path.split("/")
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if len(parts) != 5 or parts[:3] != ["", "2015-03-31", "functions"] \
                or parts[4] != "invocations":
            return self._answer(404, {"x-amzn-ErrorType": "UnknownOperationException"}, b"{}")
        try:
            result = self.invoker.invoke(parts[3], body)
        except ServiceError as exc:
            return self._answer(exc.status, {"x-amzn-ErrorType": exc.code},
                                json.dumps(exc.to_body()).encode())
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        self._answer(result.status_code, headers, result.payload)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json",
                            "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: one line per request otherwise


@pytest.fixture
def endpoint(invoker: Invoker) -> Iterator[str]:
    route = type("Route", (InvokeRoute,), {"invoker": invoker})
    server = ThreadingHTTPServer(("127.0.0.1", 0), route)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_open_loop_over_http(endpoint: str, make_function: MakeFunction) -> None:
    name = make_function("add.handler", name="add")
    report = bench_json(name, "--endpoint", endpoint, "--payload", '{"a": 1, "b": 2}',
                        "--rate", "400", "--duration", "1", "--concurrency", "4")
    check_shape(report, 400)
    assert report["errors"] == 0
    assert (report["mode"], report["rate"], report["target"]) == ("open", 400, f"HTTP, {endpoint}")


def test_throttles_over_http_are_counted_by_reason(endpoint: str,
                                                   make_function: MakeFunction) -> None:
    name = make_function("sleeper.handler", name="sleeper", reserved_concurrency=1)
    report = bench_json(name, "--endpoint", endpoint, "--payload", '{"seconds": 0.02}',
                        "--requests", "60", "--concurrency", "4")
    check_shape(report, 60)
    throttled = report["throttles"].get("ReservedFunctionConcurrentInvocationLimitExceeded", 0)
    assert throttled > 0, report
    assert report["errors"] == throttled
    assert report["function_errors"] == report["service_errors"] == {}


def test_function_errors_over_http_come_from_the_header(endpoint: str,
                                                        make_function: MakeFunction) -> None:
    name = make_function("raise_.handler", name="boom")
    report = bench_json(name, "--endpoint", endpoint, "--requests", "20", "--concurrency", "2")
    assert report["function_errors"] == {"Unhandled": 20}


def test_an_unknown_function_over_http_stops_at_the_first_call(endpoint: str) -> None:
    done = bench("nope", "--endpoint", endpoint, "--requests", "5")
    assert done.returncode == 2
    assert "the first call failed: ResourceNotFoundException (404)" in done.stderr


# -- HTML plot ----------------------------------------------------------------------------

class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)


def test_html_plot_is_one_self_contained_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    recorder = Recorder()
    recorder.started_ns = 0
    for i in range(2000):  # 2 s at 1,000/s; the second half slower and partly failing
        start = i * 1_000_000
        slow = i >= 1000
        recorder.record(start, start + (5_000_000 if slow else 200_000),
                        Failure(FUNCTION, "Unhandled") if slow and i % 10 == 0 else None)
    recorder.stopped_ns = 2_005_000_000
    page = tmp_path / "run.html"
    plot.write(page, recorder, "title <&>", "summary text", rate=1000)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>title &lt;&amp;&gt;</title>" in text
    tags = _Tags()
    tags.feed(text)
    assert {"html", "pre", "svg", "path"} <= set(tags.tags)
    # Nothing fetched from elsewhere: no scripts, stylesheets or external links.
    assert "<?xml" not in text
    assert {"script", "link", "img", "iframe"}.isdisjoint(tags.tags)
    assert 'href="http' not in text and "src=" not in text
