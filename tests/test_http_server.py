"""The HTTP server itself: keep-alive and pipelining, slow clients, /metrics and
/healthz, and the stop (SIGTERM finishes what runs; a second SIGINT stops at once; no
worker outlives the server)."""

from __future__ import annotations

import json
import signal
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import FUNCTIONS, alive, describe, notify_socket, read_line, wait_until
from http_server import Server, http_exchange, read_responses, write_template
from prometheus_client.parser import text_string_to_metric_families


def invoke_request(name: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\nHost: t\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_pipelined_requests_are_answered_in_order(lambda_server: Server) -> None:
    with lambda_server.connect() as sock:
        # A slow one first: the quick ones behind it must not overtake it.
        sock.sendall(invoke_request("sleeper", b'{"seconds": 0.3, "id": 1}')
                     + b"".join(invoke_request("echo", b"%d" % n) for n in (2, 3))
                     + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        answers = read_responses(sock, 4)
        assert [status for status, _, _ in answers] == [200, 200, 200, 200]
        assert json.loads(answers[0][2])["id"] == 1
        assert [body for _, _, body in answers[1:3]] == [b"2", b"3"]
        assert json.loads(answers[3][2])["status"] == "ok"
        sock.sendall(invoke_request("echo", b"4"))  # the connection is kept alive
        assert read_responses(sock, 1)[0][2] == b"4"


def test_metrics_parse_as_prometheus_text(lambda_server: Server) -> None:
    client = lambda_server.client()
    for _ in range(2):
        assert client.invoke(FunctionName="echo", Payload=b"1")["Payload"].read() == b"1"
    client.close()
    with urllib.request.urlopen(lambda_server.url + "/metrics") as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        families = {family.name: family for family in
                    text_string_to_metric_families(answer.read().decode())}
    echo = {"function": "echo"}

    def value(family: str, sample: str, **labels: str) -> float:
        return next(s.value for s in families[family].samples
                    if s.name == sample and s.labels == {**echo, **labels})

    assert value("fastinvoke_invocations", "fastinvoke_invocations_total") >= 2
    assert value("fastinvoke_duration_seconds", "fastinvoke_duration_seconds",
                 quantile="0.5") > 0
    assert value("fastinvoke_http_invoke_seconds", "fastinvoke_http_invoke_seconds_count") >= 2
    assert families["fastinvoke_bill_requests"].samples[0].value >= 2
    assert "fastinvoke_bill_usd" in families and "fastinvoke_gb_seconds" in families


@pytest.fixture
def impatient_server(tmp_path: Path) -> Any:
    server = Server(tmp_path / "state", "--read-timeout", "0.5",
                    template=write_template(tmp_path))
    yield server
    assert server.stop()[0] == 0


def test_a_slow_partial_request_is_timed_out_and_others_are_served(
        impatient_server: Server) -> None:
    with impatient_server.connect() as slow, impatient_server.connect() as other:
        slow.sendall(invoke_request("echo", b"{}")[:-1])  # the body's last byte never comes
        raw = http_exchange(slow, b"")
        assert raw.startswith(b"HTTP/1.1 408 ")
        assert b"x-amzn-ErrorType: RequestTimeoutException" in raw
        assert raw.endswith(b"}") and b'"message":' in raw
        other.sendall(invoke_request("echo", b"5"))
        assert read_responses(other, 1)[0][:3:2] == (200, b"5")


def test_sigterm_finishes_the_running_invocation_and_leaves_no_process(
        tmp_path: Path) -> None:
    server = Server(tmp_path / "state", template=write_template(tmp_path))
    try:
        client = server.client()
        answers: list[Any] = []
        with notify_socket() as (sock, path):
            call = threading.Thread(target=lambda: answers.append(client.invoke(
                FunctionName="sleeper", Payload=json.dumps({"seconds": 1, "notify": path}))))
            call.start()
            sock.recv(64)
            running = server.descendants()  # the template and the worker
            assert running
            server.process.send_signal(signal.SIGTERM)
            call.join()
        assert json.loads(answers[0]["Payload"].read())["pid"] > 0
        status, err = server.stop()
        assert status == 0, err
        assert "finishing 1 requests" in err
        assert not [pid for pid in running if alive(pid)], describe(running)
        client.close()
    finally:
        server.kill()


def test_a_second_sigint_stops_at_once(tmp_path: Path) -> None:
    server = Server(tmp_path / "state", template=write_template(tmp_path))
    try:
        client = server.client()
        errors: list[Exception] = []

        def long_call() -> None:
            try:
                client.invoke(FunctionName="sleeper", Payload=json.dumps(
                    {"seconds": 25, "notify": path}))["Payload"].read()
            except Exception as exc:  # the server goes away mid-call
                errors.append(exc)

        with notify_socket() as (sock, path):
            call = threading.Thread(target=long_call)
            call.start()
            sock.recv(64)
            running = server.descendants()
            server.process.send_signal(signal.SIGINT)
            # The second only once the first was handled: two signals sent at once may
            # arrive as one.
            while b"stopping:" not in read_line(server.process, 15, server.process.stderr):
                pass
            server.process.send_signal(signal.SIGINT)
            status, err = server.stop(timeout=15)  # well before the 25 s call would end
            call.join()
        assert status == 0, err
        assert errors, "the call cannot have finished: its server stopped before"
        assert not [pid for pid in running if alive(pid)], describe(running)
        client.close()
    finally:
        server.kill()


def test_serve_caps_workers_and_resumes_queued_events(tmp_path: Path) -> None:
    """--max-workers bounds a function's workers (callers wait for one); Event invocations
    a previous run left queued are resumed, and serve says so."""
    from concurrent.futures import ThreadPoolExecutor

    from fastinvoke import FunctionConfig, Invoker
    state = tmp_path / "state"
    previous = Invoker(state, account_limit=1)
    try:
        for name, handler in (("gate", "gate.handler"), ("sleeper", "sleeper.handler")):
            previous.create_function(FunctionConfig(name=name, handler=handler, code=FUNCTIONS,
                                                    timeout_s=30))
        # The gate holds the account's only slot: the events stay queued until the close.
        holder = threading.Thread(target=previous.invoke,
                                  args=("gate", {"gate": str(tmp_path / "never")}))
        holder.start()
        wait_until(lambda: previous.meter("gate")["concurrent"] == 1)
        for i in range(3):
            previous.invoke("sleeper", {"id": i}, invocation_type="Event")
    finally:
        previous.close(grace_s=0)
    holder.join()
    server = Server(state, "--max-workers", "1")
    try:
        client = server.client()
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda i: client.invoke(
                FunctionName="sleeper", Payload=json.dumps({"seconds": 0.05, "id": i})),
                range(3)))
        assert [answer["StatusCode"] for answer in answers] == [200, 200, 200]
        wait_until(lambda: 'fastinvoke_invocations_total{function="sleeper"} 6.0' in
                   urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode())
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
        assert 'fastinvoke_cold_starts_total{function="sleeper"} 1.0' in metrics
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert "3 queued Event invocations resumed from" in err
