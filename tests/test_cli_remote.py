"""``fastinvoke invoke --endpoint``: a running server invoked from the command line, over
its Lambda API and its ZeroMQ endpoint, with Lambda's errors and a wait for a server
that is still starting."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import NOT_FOUND_SERVER, other_http_server, processes_mentioning
from http_server import ROOT, Server


def fastinvoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastinvoke", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("over", ["http", "zmq"])
def test_invoke_prints_the_payload_and_the_tail(served: Server, over: str) -> None:
    endpoint = served.url if over == "http" else served.zmq
    done = fastinvoke("invoke", "echo", "--endpoint", endpoint, "--payload", '{"hi": 1}',
                      "--log-type", "Tail")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("StatusCode: 200")
    payload, *log = done.stdout.splitlines()
    assert payload == '{"hi": 1}'
    assert log[0].startswith("START RequestId: ") and log[-1].startswith("REPORT RequestId: ")


def test_a_function_error_and_a_service_error(served: Server) -> None:
    failed = fastinvoke("invoke", "raises", "--endpoint", served.url)
    assert failed.returncode == 0
    assert "FunctionError: Unhandled" in failed.stderr and '"errorType": "ValueError"' in \
        failed.stdout
    missing = fastinvoke("invoke", "nope", "--endpoint", served.url)
    assert missing.returncode == 2
    assert "ResourceNotFoundException: Function not found: " in missing.stderr


def test_nothing_listening_is_waited_for_then_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from fastinvoke.errors import ServiceException
    from fastinvoke.remote import invoke_remote
    with pytest.raises(ServiceException, match="nothing answers at .*start `fastinvoke serve`"):
        invoke_remote(f"http://127.0.0.1:{port}", "f", b"{}", wait_s=0.3)


@pytest.mark.parametrize("script, status", [(None, "501"), (NOT_FOUND_SERVER, "404")])
def test_an_endpoint_that_is_not_lambdas_is_an_error_naming_it(script: str | None,
                                                               status: str) -> None:
    """http.server (501 to a POST) or a web site's 404 page: not Lambda's answers (no
    x-amzn-RequestId), never printed as an invocation's status and payload."""
    with other_http_server(script=script) as port:
        done = fastinvoke("invoke", "echo", "--endpoint", f"http://127.0.0.1:{port}")
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"fastinvoke: InvalidParameterValueException: "
                           f"http://127.0.0.1:{port} is not a Lambda API: it answered {status} ")
    assert "give --endpoint the address `fastinvoke serve` prints" in line


def test_lambdas_own_404_stays_its_error(served: Server) -> None:
    """The same status from Lambda (x-amzn-ErrorType) is Lambda's error, not the above."""
    from fastinvoke.errors import ResourceNotFoundException
    from fastinvoke.remote import invoke_remote
    with pytest.raises(ResourceNotFoundException, match="Function not found: "):
        invoke_remote(served.url, "nope", b"{}")
    assert invoke_remote(served.url, "echo", b"[1]").request_id


def test_an_endpoint_that_does_not_answer_http_is_an_error_naming_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(60)  # the client connects; if it never does, fail, not hang
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = subprocess.Popen([sys.executable, "-m", "fastinvoke", "invoke", "echo",
                                   "--endpoint", endpoint], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        out, err = client.communicate(timeout=60)
    assert client.returncode == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"fastinvoke: ServiceException: {endpoint} gave no HTTP answer ")


def serve_sh(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """examples/serve.sh with this checkout's fastinvoke, its temporary files under
    ``tmp_path``, and ``env`` (PORT only if given)."""
    inherited = {key: value for key, value in os.environ.items() if key != "PORT"}
    return subprocess.run([str(Path(ROOT, "examples", "serve.sh"))], capture_output=True,
                          text=True, timeout=120, env=dict(
                              inherited, FASTINVOKE=f"{sys.executable} -m fastinvoke",
                              PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path), **env))


def test_the_quick_start_main_job_runs(tmp_path: Path) -> None:
    """README's first command, after the setup: examples/serve.sh, with 3001 (serve's
    default port) held by another program, as a new user's machine may have it."""
    with other_http_server(3001):  # or 3001 is already held by whoever holds it
        done = serve_sh(tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    served = re.match(r"fastinvoke: serving the Lambda API on http://127\.0\.0\.1:(\d+) ",
                      lines[0])
    assert served is not None and served[1] != "3001", lines[0]
    assert re.match(r"fastinvoke: serving 1 API routes on http://127\.0\.0\.1:\d+$", lines[1])
    assert lines[2].split() == ["GET", "/hello/{name}", "->", "hello", "(HTTP", "API",
                                "ServerlessHttpApi,", "payload", "2.0)"]
    assert lines[3].startswith("fastinvoke: serving Invoke over ZeroMQ on ipc://")
    assert "30" in lines and "hello from fastinvoke" in lines
    assert '{"message": "hello fastinvoke", "route": "GET /hello/{name}"}' in lines
    assert lines[-1].startswith("to pay ")
    assert "StatusCode: 200" in done.stderr and "StatusCode: 501" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # its state, removed


def test_the_main_job_on_a_taken_port_stops_saying_so(tmp_path: Path) -> None:
    """PORT=N held by another program: the server's one line, the script's, and no
    invocation sent to that program; nothing is left running or on disk."""
    with other_http_server() as port:
        done = serve_sh(tmp_path, PORT=str(port))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"fastinvoke serve: 127.0.0.1:{port} is in use by another program; pick another "
        "with --port N",
        f"{ROOT}/examples/serve.sh: fastinvoke serve did not start (exit status 1)"]
    assert list(tmp_path.iterdir()) == []
    assert not processes_mentioning(str(tmp_path))
