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
        results = client.invoke_many(name, payloads, depth=64)
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
