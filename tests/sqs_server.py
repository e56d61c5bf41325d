"""A real SQS- and S3-compatible server for the tests: moto's standalone server
(``moto_server``, from PyPI; one endpoint for every service it emulates), on a free
loopback port, in its own process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from helpers import read_line

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def sqs_server() -> Iterator[str]:
    """The endpoint of a running moto server, stopped after the block."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **CREDENTIALS})
    try:
        while not re.search(rb"Running on http://127\.0\.0\.1:\d+",
                            read_line(process, timeout=60, stream=process.stderr)):
            pass
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)
        process.stderr.close()


def sqs(endpoint: str) -> Any:
    return client("sqs", endpoint)


def client(service: str, endpoint: str) -> Any:
    """A boto3 client of ``service`` at the moto server ``endpoint``."""
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
