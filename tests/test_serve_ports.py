"""``fastinvoke serve`` on a port another program holds (``python3 -m http.server 3001``
left running, another ``fastinvoke serve``...): one line naming the flag that picks
another port, exit status 1, and nothing started, not even its state directory."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import other_http_server, processes_mentioning
from http_server import ROOT, serving, write_template


def serve(state: Path, *args: str, template: Path | None = None
          ) -> subprocess.CompletedProcess[str]:
    """``fastinvoke serve`` with the test functions (or ``template``), to its end."""
    template = template or write_template(state.parent)
    return subprocess.run([sys.executable, "-m", "fastinvoke", "serve", "--template",
                           str(template), "--state-dir", str(state), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@contextmanager
def listening_socket() -> Iterator[int]:
    """A port held by a plain listening socket of this process, which never answers."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@contextmanager
def http_server() -> Iterator[int]:
    with other_http_server() as port:
        assert port is not None
        yield port


HOLDERS = {"http.server": http_server, "a listening socket": listening_socket}


@pytest.mark.parametrize("holder", HOLDERS)
def test_a_taken_port_is_one_line_naming_the_flag_and_exit_1(tmp_path: Path,
                                                             holder: str) -> None:
    state = tmp_path / "state"
    with HOLDERS[holder]() as port:
        done = serve(state, "--port", str(port))
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"fastinvoke serve: 127.0.0.1:{port} is in use by another program; pick another "
        "with --port N"], done.stderr
    assert done.stdout == ""
    assert not state.exists()  # bound first: no Invoker, template or worker was started
    assert not processes_mentioning(str(tmp_path))


def test_a_taken_zmq_port_is_one_line_naming_the_flag_and_exit_1(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with other_http_server() as port:
        done = serve(state, "--port", "0", "--zmq", f"tcp://127.0.0.1:{port}")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"fastinvoke serve: 127.0.0.1:{port} is in use by another program; pick another "
        "with --zmq tcp://127.0.0.1:N"], done.stderr
    assert not state.exists()
    assert not processes_mentioning(str(tmp_path))


def test_zmq_on_the_http_port_is_named_as_such(tmp_path: Path) -> None:
    with listening_socket() as port:  # a free port, freed again
        pass
    done = serve(tmp_path / "state", "--port", str(port), "--zmq", f"tcp://127.0.0.1:{port}")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"fastinvoke serve: --zmq tcp://127.0.0.1:{port} takes the Lambda API's own port "
        "(--port); pick another with --zmq tcp://127.0.0.1:N"], done.stderr
    assert not (tmp_path / "state").exists()


def test_a_second_server_on_the_same_port_and_state_leaves_the_first_serving(
        tmp_path: Path) -> None:
    """The usual way to hold the port: a server already running, maybe from the same
    directory (the default state dir is .fastinvoke).  Starting an Invoker there would
    take the running server's workers' socket; the second server starts nothing."""
    with serving(tmp_path) as first:
        done = serve(tmp_path / "state", "--port", str(first.port))
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines() == [
            f"fastinvoke serve: 127.0.0.1:{first.port} is in use by another program; pick "
            "another with --port N"], done.stderr
        client = first.client(read_timeout=20)
        for name in ("echo", "printer"):  # workers started after the second one ended
            answer = client.invoke(FunctionName=name, Payload=b'{"message": "still here"}')
            assert "FunctionError" not in answer
            assert json.loads(answer["Payload"].read()) in (
                {"message": "still here"}, {"printed": "still here"})
        client.close()


def routed_template(directory: Path) -> Path:
    """The test functions' template, with an HTTP API route to echo."""
    template = write_template(directory)
    text = template.read_text().replace(
        "      Handler: echo.handler\n",
        "      Handler: echo.handler\n      Events:\n        Get:\n          Type: HttpApi\n"
        "          Properties: {Path: /echo, Method: get}\n")
    template.write_text(text)
    return template


def test_a_taken_api_port_is_one_line_naming_the_flag_and_exit_1(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with other_http_server() as port:
        done = serve(state, "--port", "0", "--api-port", str(port),
                     template=routed_template(tmp_path))
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"fastinvoke serve: 127.0.0.1:{port} (the API port) is in use by another program; "
        "pick another with --api-port N, or add --no-api"], done.stderr
    assert not state.exists()
    assert not processes_mentioning(str(tmp_path))


def test_the_api_port_stays_on_loopback(tmp_path: Path) -> None:
    """The Lambda API may serve other machines with signed requests; the API port takes
    no signatures, so it is refused there."""
    keys = tmp_path / "keys.json"
    keys.write_text('{"AKIDTEST": "secret"}')
    done = serve(tmp_path / "state", "--host", "0.0.0.0", "--port", "0", "--api-port", "0",
                 "--auth", "sigv4", "--keys", str(keys), template=routed_template(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "fastinvoke serve: refusing to serve the template's API routes on 0.0.0.0: the API "
        "port has no authentication. Bind 127.0.0.1, or add --no-api"], done.stderr
    assert not (tmp_path / "state").exists()
