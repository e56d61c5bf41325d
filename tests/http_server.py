"""A real ``fastinvoke serve`` in a subprocess, and boto3 clients pointed at it."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httptools
from botocore.config import Config
from helpers import FUNCTIONS, alive, descendants, describe, kill_all, read_line

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(rb"^fastinvoke: serving the Lambda API on http://([^:]+):(\d+) ")
ZMQ_READY = re.compile(rb"^fastinvoke: serving Invoke over ZeroMQ on (\S+)")
# Functions of tests/functions every server has (template names -> handler).
HANDLERS = {"echo": "echo.handler", "sleeper": "sleeper.handler", "raises": "raise_.handler",
            "printer": "printer.handler", "context": "context_dump.handler",
            "hang": "hang.handler"}


def write_template(directory: Path) -> Path:
    resources = "".join(
        f"  {name}:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        f"      FunctionName: {name}\n      Handler: {handler}\n      CodeUri: {FUNCTIONS}\n"
        f"      Timeout: {2 if name == 'hang' else 30}\n"
        for name, handler in HANDLERS.items())
    template = directory / "template.yaml"
    template.write_text(f"Globals:\n  Function:\n    Runtime: python3.{sys.version_info.minor}\n"
                        f"Resources:\n{resources}")
    return template


class Server:
    """``fastinvoke serve`` on a free port.  ``stop`` sends SIGTERM and waits; the process
    is in its own session, so ``kill`` can end whatever it left behind."""

    def __init__(self, state_dir: Path, *args: str, template: Path | None = None) -> None:
        # Unsandboxed: tests hand handlers gate files of this machine (test_sandbox covers
        # the sandbox, which is serve's default).
        command = [sys.executable, "-m", "fastinvoke", "serve", "--port", "0",
                   "--state-dir", str(state_dir), "--no-sandbox", *args]
        if template is not None:
            command += ["--template", str(template)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True)
        line = read_line(self.process, timeout=30)
        match = READY.match(line)
        assert match is not None, line
        self.host = match[1].decode()
        self.port = int(match[2])
        self.url = f"http://{self.host}:{self.port}"
        self.zmq: str | None = None
        if "--zmq" in args:  # after the API routes, if the template has some
            while (zmq := ZMQ_READY.match(line := read_line(self.process, timeout=30))) is None:
                assert line.startswith((b"fastinvoke: serving ", b"  ")), line
            self.zmq = zmq[1].decode()

    def client(self, key: str = "AKIDTEST", secret: str = "secret", **config: Any) -> Any:
        """A boto3 Lambda client; no retries (a test sees each answer), long reads."""
        options = {"retries": {"max_attempts": 0}, "read_timeout": 60, **config}
        return boto3.client("lambda", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            config=Config(**options))

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=10)

    def descendants(self) -> set[int]:
        return descendants(self.process.pid)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        """Signal the server and wait for it; its exit status and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            _, err = self.process.communicate(timeout=timeout)
        finally:
            self.kill()
        return self.process.returncode, err.decode(errors="replace")

    def kill(self) -> None:
        """End the server and anything of its session still running (cleanup)."""
        left = self.descendants()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        kill_all(left)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def zip_of(files: dict[str, str]) -> bytes:
    """A deployment package holding ``files`` (name -> source)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def http_exchange(sock: socket.socket, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` and read until the server closes or ``timeout`` passes."""
    sock.settimeout(timeout)
    if data:
        sock.sendall(data)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


class _Responses:
    """httptools callbacks collecting whole responses: (status, headers, body)."""

    def __init__(self) -> None:
        self.done: list[tuple[int, dict[str, str], bytes]] = []
        self.headers: dict[str, str] = {}
        self.body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self.headers, self.body))
        self.headers, self.body = {}, b""


def read_responses(sock: socket.socket, count: int,
                   timeout: float = 30.0) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` whole HTTP responses (fewer if the server closes first)."""
    collector = _Responses()
    collector.parser = httptools.HttpResponseParser(collector)
    sock.settimeout(timeout)
    while len(collector.done) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        collector.parser.feed_data(chunk)
    return collector.done


@contextmanager
def serving(directory: Path, *args: str, template: bool | Path = True) -> Iterator[Server]:
    """A ``Server`` in ``directory`` (with the ``HANDLERS`` template, another one, or none)
    for the block; it must then stop cleanly on SIGTERM, leaving no process."""
    if template is True:
        template = write_template(directory)
    server = Server(directory / "state", *args, template=template or None)
    try:
        yield server
        left = server.descendants()
        status, err = server.stop()
        assert status == 0, err
        assert not any(alive(pid) for pid in left), describe(left)
    finally:
        server.kill()
