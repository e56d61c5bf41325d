"""The ZeroMQ endpoint beyond the shared contract: pipelining, asyncio clients, frames
that are not requests, and timeouts on the client side."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
import uvloop
import zmq
from frontends import zmq_endpoint
from helpers import MakeFunction

from fastinvoke import Invoker
from fastinvoke.client import ZmqClient
from fastinvoke.endpoint.protocol import decode_response
from fastinvoke.errors import ResourceNotFoundException


def test_pipelined_calls_come_back_in_order_with_errors_in_place(
        invoker: Invoker, make_function: MakeFunction, tmp_path: Path) -> None:
    name = make_function("add.handler")
    payloads = [{"a": i, "b": 1} for i in range(500)]
    with zmq_endpoint(invoker, f"ipc://{tmp_path}/zmq") as endpoint, \
            ZmqClient(endpoint.address) as client:
        results = client.invoke_many(name, payloads, batch=1, depth=64)  # one request each
        mixed = client.invoke_many("missing", [{}, {}])
    assert [msgspec.json.decode(r.payload)["sum"] for r in results] == \
        [i + 1 for i in range(500)]
    assert all(isinstance(error, ResourceNotFoundException) for error in mixed)


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_concurrent_async_calls_share_one_connection(
        invoker: Invoker, make_function: MakeFunction, tmp_path: Path, loop_factory) -> None:
    name = make_function("add.handler")
    with zmq_endpoint(invoker, f"ipc://{tmp_path}/zmq") as endpoint, \
            ZmqClient(endpoint.address) as client:
        async def many() -> list:
            return await asyncio.gather(*(client.ainvoke(name, {"a": i, "b": i})
                                          for i in range(200)))

        with asyncio.Runner(loop_factory=loop_factory) as runner:
            results = runner.run(many())
    assert [msgspec.json.decode(r.payload)["sum"] for r in results] == \
        [2 * i for i in range(200)]


def test_a_frame_that_is_not_a_request_gets_400_and_the_endpoint_keeps_serving(
        invoker: Invoker, make_function: MakeFunction, tmp_path: Path) -> None:
    name = make_function("add.handler")
    with zmq_endpoint(invoker, f"ipc://{tmp_path}/zmq") as endpoint:
        context = zmq.Context(1)
        raw = context.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(endpoint.address)
        try:
            for garbage in ([b"\xff\x00garbage"], [b"two", b"frames"], [b""]):
                raw.send_multipart(garbage)
                assert raw.poll(10_000)
                response = decode_response(raw.recv())
                assert (response.id, response.status, response.error_type) == (
                    0, 400, "InvalidRequestContentException")
        finally:
            raw.close()
            context.term()
        with ZmqClient(endpoint.address) as client:
            assert client.invoke(name, {"a": 1, "b": 2}).payload == b'{"sum": 3}'


def test_a_missing_server_times_out_with_what_to_check(tmp_path: Path) -> None:
    with ZmqClient(f"ipc://{tmp_path}/nobody", timeout_s=0.2) as client, \
            pytest.raises(TimeoutError, match="is `fastinvoke serve --zmq` running there"):
        client.invoke("f", {})


@pytest.mark.parametrize(("address", "refused"), [
    ("tcp://127.0.0.1:3002", False), ("tcp://localhost:3002", False), ("tcp://[::1]:3002", False),
    ("ipc:///tmp/fastinvoke.sock", False), ("tcp://0.0.0.0:3002", True),
    ("tcp://10.1.2.3:3002", True), ("tcp://*:3002", True), ("udp://x", True),
])
def test_the_endpoint_stays_on_this_machine(address: str, refused: bool) -> None:
    from fastinvoke.http.serve import check_zmq_exposure
    assert (check_zmq_exposure(address) is not None) == refused


def test_serve_refuses_a_public_zmq_address_and_says_what_to_do(tmp_path: Path) -> None:
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "serve", "--port", "0",
                           "--state-dir", str(tmp_path), "--zmq", "tcp://0.0.0.0:3002"],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 2
    assert "the endpoint has no authentication. Bind it to 127.0.0.1" in done.stderr
