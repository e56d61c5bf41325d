"""What ``fastinvoke serve`` does with requests it will not take, through real sockets:
too many or too large headers get a 431 in Lambda's error shape, a request trickling in
is cut off with a 408, and either answer reaches a client that is still sending (the
server lingers instead of resetting the connection).  Which ``--host`` spellings count as
loopback (served without signatures).  And the restart message: it counts only the
queued Event invocations that may really run again."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httptools
import pytest
from helpers import FUNCTIONS, alive, describe, read_line, wait_until
from http_server import ROOT, Server, serving

from fastinvoke.http.serve import ServeOptions, is_loopback, serve

# The API's line, its host as ``serve`` prints it: a name, IPv4, or IPv6 in brackets.
READY = re.compile(rb"^fastinvoke: serving the Lambda API on http://(\[[^\]]+\]|[^:/\s]+):(\d+) ")
LIST = b"GET /2015-03-31/functions HTTP/1.1\r\nHost: t\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The test functions, and one second to send a whole request."""
    with serving(tmp_path_factory.mktemp("limits"), "--read-timeout", "1") as served:
        yield served


class Responses:
    """Whole HTTP responses read from a socket, kept across reads (a response may span
    two reads); ``ended`` once the server closed its side."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.done: list[tuple[int, dict[str, str], bytes]] = []
        self.ended = False
        self._headers: dict[str, str] = {}
        self._body = b""
        self._parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self._parser.get_status_code(), self._headers, self._body))
        self._headers, self._body = {}, b""

    def read(self, count: int) -> list[tuple[int, dict[str, str], bytes]]:
        """Until ``count`` responses in all (fewer if the server closes first)."""
        while len(self.done) < count and not self.ended:
            chunk = self.sock.recv(65536)  # a reset raises ConnectionResetError
            if not chunk:
                self.ended = True
            else:
                self._parser.feed_data(chunk)
        return self.done

    def read_to_end(self) -> list[tuple[int, dict[str, str], bytes]]:
        return self.read(sys.maxsize)


def assert_lambda_error(answer: tuple[int, dict[str, str], bytes], status: int,
                        error_type: str) -> str:
    """``answer`` is Lambda's error shape with ``status`` and ``error_type``; its message."""
    got, headers, body = answer
    assert (got, headers["x-amzn-errortype"]) == (status, error_type), (got, headers, body)
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["x-amzn-requestid"])
    document = json.loads(body)
    assert document["Type"] == "User"
    return document["message"]


def exchange_while_sending(sock: socket.socket, head: bytes, rest: Any) -> tuple[
        list[tuple[int, dict[str, str], bytes]], list[BaseException]]:
    """Send ``head``, then the chunks of ``rest`` from another thread (until the answer
    is read), while this thread reads to the end: the answers and whatever either side
    raised (a reset shows as ConnectionResetError or BrokenPipeError)."""
    errors: list[BaseException] = []
    answered = threading.Event()

    def send() -> None:
        try:
            sock.sendall(head)
            for chunk in rest:
                if answered.is_set():
                    break
                sock.sendall(chunk)
        except OSError as exc:
            errors.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    responses = Responses(sock)
    try:
        responses.read_to_end()
    except OSError as exc:
        errors.append(exc)
    answered.set()
    sender.join()
    return responses.done, errors


# -- headers -----------------------------------------------------------------------------

def test_too_many_headers_get_a_431_in_lambdas_shape(server: Server) -> None:
    with server.connect() as sock:  # 100 headers (Host and 99 more) are taken
        sock.sendall(LIST + b"".join(b"X-H%d: v\r\n" % i for i in range(99)) + b"\r\n")
        answer = Responses(sock).read(1)[0]
        assert answer[0] == 200 and "Functions" in json.loads(answer[2])
    with server.connect() as sock:  # the 101st is not
        answers, errors = exchange_while_sending(
            sock, LIST + b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n", ())
    assert not errors
    assert len(answers) == 1
    message = assert_lambda_error(answers[0], 431, "RequestHeaderFieldsTooLargeException")
    assert message == "The request has more than 100 headers; send fewer"


@pytest.mark.parametrize(("headers", "said"), [
    ([b"X-Big: " + b"a" * 200_000], "The request line and headers exceed 65536 bytes"),
    ([b"X-H%d: v" % i for i in range(30_000)], "The request has more than 100 headers"),
], ids=["one large header", "thousands of headers"])
def test_headers_too_large_get_a_431_not_a_reset(server: Server, headers: list[bytes],
                                                 said: str) -> None:
    # The client is still sending its headers when the answer comes: it must get it,
    # and may finish sending, instead of a reset.
    data = LIST + b"\r\n".join(headers) + b"\r\n\r\n"
    chunks = [data[i:i + 16384] for i in range(0, len(data), 16384)]
    with server.connect() as sock:
        answers, errors = exchange_while_sending(sock, chunks[0], chunks[1:])
    assert not errors, errors
    assert len(answers) == 1
    message = assert_lambda_error(answers[0], 431, "RequestHeaderFieldsTooLargeException")
    assert message.startswith(said)
    with server.connect() as sock:  # and the server serves on
        sock.sendall(LIST + b"\r\n")
        assert Responses(sock).read(1)[0][0] == 200


def test_a_body_too_large_is_answered_while_the_client_still_sends_it(server: Server) -> None:
    head = (b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: t\r\n"
            b"Content-Length: 100000000\r\n\r\n")
    body = (b"x" * 65536 for _ in range(256))  # 16 MB of the 100 MB announced
    with server.connect() as sock:
        answers, errors = exchange_while_sending(sock, head, body)
    assert not errors, errors
    assert len(answers) == 1
    assert_lambda_error(answers[0], 413, "RequestEntityTooLargeException")


# -- slow requests -----------------------------------------------------------------------

def test_a_body_that_trickles_in_is_cut_off_with_a_408(server: Server) -> None:
    """A byte every 50 ms keeps the connection busy but never completes the request
    within the 1 s the server gives: the deadline is for the whole request."""
    head = (b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: t\r\n"
            b"Content-Length: 1000\r\n\r\n")

    def trickle() -> Iterator[bytes]:
        for _ in range(999):  # the client's pace, not a wait for the server
            time.sleep(0.05)
            yield b"1"

    with server.connect() as sock:
        started = time.monotonic()
        answers, errors = exchange_while_sending(sock, head, trickle())
        took = time.monotonic() - started
    assert not errors, errors
    assert len(answers) == 1, "cut off once, and the connection closed"
    message = assert_lambda_error(answers[0], 408, "RequestTimeoutException")
    assert message.startswith("The request did not arrive whole within 1 seconds")
    assert took >= 1.0  # not before its deadline


def invoke(name: str, body: bytes) -> bytes:
    return (f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\nHost: t\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_time_the_server_does_not_read_is_not_held_against_the_client(server: Server) -> None:
    """33 pipelined requests: the server reads 32 and stops reading until it has
    answered half; the 33rd, partly read, waits meanwhile (1.6 s of 0.1 s invocations,
    past the 1 s read timeout) and is completed as soon as the server reads again."""
    slow = b"".join(invoke("sleeper", b'{"seconds": 0.1, "id": %d}' % i) for i in range(32))
    last = invoke("echo", b'"last"')
    with server.connect() as sock:
        sock.sendall(slow + last[:-1])
        responses = Responses(sock)
        responses.read(17)  # the server read again before answering the 17th
        sock.sendall(last[-1:])
        answers = responses.read(33)
    assert [status for status, _, _ in answers] == [200] * 33, answers[-1]
    assert [json.loads(body)["id"] for _, _, body in answers[:32]] == list(range(32))
    assert answers[32][2] == b'"last"'


# -- which hosts are loopback ------------------------------------------------------------

def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


IPV6 = pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")


class AnyHostServer(Server):
    """``Server``, whatever the spelling of ``--host`` (an IPv6 one is printed in
    brackets)."""

    def __init__(self, state_dir: Path, host: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fastinvoke", "serve", "--port", "0", "--state-dir",
             str(state_dir), "--host", host], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)),
            start_new_session=True)
        line = read_line(self.process, timeout=30)
        match = READY.match(line)
        assert match is not None, line
        self.host = match[1].decode().strip("[]")
        self.port = int(match[2])
        self.url = f"http://{match[1].decode()}:{self.port}"
        self.zmq = None


@pytest.mark.parametrize("host", [
    "127.1", "127.0.0.2", "localhost",
    pytest.param("::1", marks=IPV6), pytest.param("0:0:0:0:0:0:0:1", marks=IPV6),
])
def test_loopback_spellings_are_served_without_signatures(tmp_path: Path, host: str) -> None:
    served = AnyHostServer(tmp_path / "state", host)
    try:
        with urllib.request.urlopen(served.url + "/healthz", timeout=30) as answer:
            assert json.loads(answer.read())["status"] == "ok"
        left = served.descendants()
        status, err = served.stop()
        assert status == 0, err
        assert not any(alive(pid) for pid in left), describe(left)
    finally:
        served.kill()


@pytest.mark.parametrize("host", ["0.0.0.0", "0", "", "::"])
def test_every_interface_needs_signatures(tmp_path: Path, host: str) -> None:
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "serve", "--port", "0",
                           "--state-dir", str(tmp_path / "state"), "--host", host], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"refusing to serve on {host} without authentication" in done.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1", True), ("127.255.255.254", True), ("2130706433", True),
    ("0x7f.1", True), ("localhost", True), ("LOCALHOST", True),
    pytest.param("::1", True, marks=IPV6), pytest.param("0:0:0:0:0:0:0:1", True, marks=IPV6),
    pytest.param("::ffff:127.0.0.1", True, marks=IPV6),
    ("0.0.0.0", False), ("", False), ("::", False), ("10.1.2.3", False), ("128.0.0.1", False),
])
def test_loopback_is_decided_on_the_resolved_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_itself_refuses_what_it_bound_beyond_loopback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Called without the command line's check, ``serve`` decides on the sockets it bound."""
    options = ServeOptions(host="0.0.0.0", port=0, state_dir=str(tmp_path / "state"))
    assert serve(options) == 2
    assert capsys.readouterr().err.startswith(
        "fastinvoke serve: refusing to serve on 0.0.0.0 without authentication")
    assert not (tmp_path / "state").exists()  # refused before anything started


# -- the restart message -----------------------------------------------------------------

def test_the_restart_message_counts_only_events_that_will_run(tmp_path: Path) -> None:
    """A previous run leaves queued events: two for ``live``; one each for ``back`` and
    ``gone`` (their code was removed, so they are not restored; the template brings
    ``back`` back), ``aged`` (enqueued longer ago than its maximum event age) and
    ``held`` (its reserved concurrency is now 0).  ``live``'s and ``back``'s are resumed;
    ``aged``'s and ``held``'s records go to their failure destination instead."""
    import shutil

    from fastinvoke import FunctionConfig, Invoker
    from fastinvoke.registry import Registry
    state, failures = tmp_path / "state", tmp_path / "failures.jsonl"
    codes = {"gate": FUNCTIONS, "live": FUNCTIONS, "back": str(tmp_path / "back-code"),
             "gone": str(tmp_path / "gone-code"), "aged": FUNCTIONS, "held": FUNCTIONS}
    for name in ("back", "gone"):
        shutil.copytree(FUNCTIONS, codes[name])
    previous = Invoker(state, account_limit=1)
    try:
        for name, code in codes.items():
            handler = "gate.handler" if name == "gate" else "sleeper.handler"
            previous.create_function(FunctionConfig(name=name, handler=handler, code=code,
                                                    timeout_s=30))
        for name in ("aged", "held"):
            previous.event_invoke_config(name, maximum_event_age_s=60,
                                         on_failure=f"file://{failures}")
        # The gate holds the account's only slot: the events stay queued until the close.
        holder = threading.Thread(target=previous.invoke,
                                  args=("gate", {"gate": str(tmp_path / "never")}))
        holder.start()
        wait_until(lambda: previous.meter("gate")["concurrent"] == 1)
        for name, count in (("live", 2), ("back", 1), ("gone", 1), ("aged", 1), ("held", 1)):
            for i in range(count):
                previous.invoke(name, {"id": f"{name}-{i}"}, invocation_type="Event")
    finally:
        previous.close(grace_s=0)
    holder.join()
    for name in ("back", "gone"):
        shutil.rmtree(codes[name])
    with sqlite3.connect(state / "events.db") as db:  # as if accepted two minutes ago
        db.execute("UPDATE events SET enqueued_ms = enqueued_ms - 120000 WHERE function = ?",
                   ("aged",))
    registry = Registry(str(state))  # as put_function_concurrency("held", 0) would leave it
    entries = registry.load()
    for entry in entries:
        if entry.config.name == "held":
            entry.config.reserved_concurrency = 0
    registry.save(entries)
    template = tmp_path / "template.yaml"
    template.write_text(
        f"Resources:\n  back:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        f"      FunctionName: back\n      Handler: sleeper.handler\n      CodeUri: {FUNCTIONS}\n"
        f"      Runtime: python3.{sys.version_info.minor}\n      Timeout: 30\n")
    server = Server(state, template=template)
    try:
        def ran(name: str, count: int) -> bool:
            metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read()
            return f'fastinvoke_invocations_total{{function="{name}"}} {count}.0' in \
                metrics.decode()

        wait_until(lambda: ran("live", 2) and ran("back", 1))
        wait_until(lambda: failures.exists() and len(failures.read_text().splitlines()) == 2)
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert f"fastinvoke: 3 queued Event invocations resumed from {state}\n" in err, err
    assert (f"fastinvoke: 3 queued Event invocations in {state} are not resumed: their function "
            "is not served, its reserved concurrency is 0, or they are past its maximum event "
            "age\n") in err, err
    records = sorted((json.loads(line) for line in failures.read_text().splitlines()),
                     key=lambda record: record["requestContext"]["condition"])
    assert [(record["requestContext"]["condition"], record["requestPayload"]["id"])
            for record in records] == [("EventAgeExceeded", "aged-0"),
                                       ("ZeroReservedConcurrency", "held-0")]
