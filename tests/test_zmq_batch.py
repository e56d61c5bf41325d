"""Batch requests on the ZeroMQ endpoint: one Request frame carrying many events, run by
``Invoker.ainvoke_many`` and answered with one Response per event (ids id ... id+N-1);
``ZmqClient.invoke_many`` / ``ainvoke_many`` sending their payloads that way; and the
clients of before batches (a Request without ``payloads``) still served."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest
import uvloop
import zmq
from frontends import zmq_endpoint
from helpers import MakeFunction, log_of

from fastinvoke import Invoker
from fastinvoke.client import ZmqClient
from fastinvoke.endpoint.protocol import Request, Response, decode_response, encode
from fastinvoke.endpoint.server import ZmqEndpoint
from fastinvoke.errors import InvalidRequestContentException, ServiceError


class PreBatchRequest(msgspec.Struct, array_like=True):
    """A Request as clients before batches encode it: seven fields."""

    id: int
    function: str
    payload: bytes = b""
    invocation_type: str = "RequestResponse"
    log_type: str | None = None
    client_context: str | None = None
    qualifier: str | None = None


def sums(results: list) -> list[int]:
    return [msgspec.json.decode(result.payload)["sum"] for result in results]


@contextmanager
def raw_socket(address: str) -> Iterator[zmq.Socket]:
    """A bare DEALER: the frames on the wire, no client in between."""
    context = zmq.Context(1)
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        yield socket
    finally:
        socket.close()
        context.term()


def receive(socket: zmq.Socket) -> Response:
    assert socket.poll(30_000), "no response within 30 s"
    return decode_response(socket.recv())


@pytest.fixture
def endpoint(invoker: Invoker, tmp_path: Path) -> Iterator[ZmqEndpoint]:
    with zmq_endpoint(invoker, f"ipc://{tmp_path}/zmq") as served:
        yield served


def test_a_batch_request_is_answered_once_per_event_in_order(
        invoker: Invoker, make_function: MakeFunction, endpoint: ZmqEndpoint) -> None:
    name = make_function("add.handler")
    events = [msgspec.json.encode({"a": n, "b": 1000}) for n in range(40)]
    with raw_socket(endpoint.address) as socket:
        socket.send(encode(Request(1000, name, None, payloads=events)))
        responses = [receive(socket) for _ in events]
        # A request of before batches on the same socket: the next frame is its answer,
        # so the batch got exactly one response per event.
        socket.send(msgspec.msgpack.encode(PreBatchRequest(7, name, b'{"a": 2, "b": 3}')))
        single = receive(socket)
    assert [r.id for r in responses] == list(range(1000, 1040))
    assert all(r.status == 200 and r.error_type is None and r.function_error is None
               for r in responses)
    assert sums(responses) == [n + 1000 for n in range(40)]
    assert len({r.request_id for r in responses}) == 40
    assert (single.id, single.status, single.payload) == (7, 200, b'{"sum": 5}')
    assert invoker.meter(name)["invocations"] == 41
    for response in responses[::13]:  # each its own START ... REPORT
        text = log_of(invoker, name, response.request_id)
        assert text is not None and text.startswith(f"START RequestId: {response.request_id}")


def test_an_invalid_event_fails_every_event_of_its_batch_and_none_runs(
        invoker: Invoker, make_function: MakeFunction, endpoint: ZmqEndpoint) -> None:
    name = make_function("add.handler")
    good = b'{"a": 1, "b": 2}'
    with raw_socket(endpoint.address) as socket:
        socket.send(encode(Request(1, name, None, payloads=[good, b"{not json", good])))
        invalid = [receive(socket) for _ in range(3)]
        socket.send(encode(Request(10, "missing", None, payloads=[good, good])))
        missing = [receive(socket) for _ in range(2)]
        socket.send(encode(Request(20, name, None, qualifier="1", payloads=[good, good])))
        qualified = [receive(socket) for _ in range(2)]
    assert [r.id for r in invalid] == [1, 2, 3]
    assert all((r.status, r.error_type) == (400, "InvalidRequestContentException")
               and r.error_message.startswith("event 1: Could not parse request body")
               for r in invalid)
    assert [(r.id, r.status, r.error_type) for r in missing] == [
        (10, 404, "ResourceNotFoundException"), (11, 404, "ResourceNotFoundException")]
    assert [(r.id, r.status, r.error_type) for r in qualified] == [
        (20, 400, "InvalidRequestContentException"), (21, 400, "InvalidRequestContentException")]
    assert "send such invocations one Request each" in qualified[0].error_message
    assert invoker.meter(name)["invocations"] == 0


def test_invoke_many_sends_batches_and_keeps_a_batchs_error_in_place(
        invoker: Invoker, make_function: MakeFunction, endpoint: ZmqEndpoint) -> None:
    name = make_function("add.handler")
    payloads: list = [{"a": n, "b": 1} for n in range(100)]
    payloads[50] = b"{not json"  # in the 4th batch of 16: 48 ... 63
    with ZmqClient(endpoint.address, timeout_s=60) as client:
        results = client.invoke_many(name, payloads, batch=16, depth=2)
        events = client.invoke_many(name, [{"a": 0, "b": 0}] * 3, invocation_type="Event")
    failed = range(48, 64)
    assert all(isinstance(results[n], InvalidRequestContentException) and
               str(results[n]).startswith("event 2: ") for n in failed)
    kept = [n for n in range(100) if n not in failed]
    assert sums([results[n] for n in kept]) == [n + 1 for n in kept]
    assert len({results[n].request_id for n in kept}) == len(kept)
    assert [r.status_code for r in events] == [202, 202, 202]
    assert invoker.wait_for_events(name, timeout_s=60)
    assert invoker.meter(name)["invocations"] == len(kept) + 3


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_concurrent_ainvoke_many_calls_share_one_connection(
        make_function: MakeFunction, endpoint: ZmqEndpoint, loop_factory) -> None:
    name = make_function("add.handler")
    with ZmqClient(endpoint.address, timeout_s=60) as client:
        async def calls() -> list:
            return await asyncio.gather(
                *(client.ainvoke_many(name, [{"a": n, "b": k} for n in range(50)], batch=8)
                  for k in range(3)),
                client.ainvoke(name, {"a": 1, "b": 1}),
                client.ainvoke_many("missing", [{}, {}]))

        with asyncio.Runner(loop_factory=loop_factory) as runner:
            *batches, single, missing = runner.run(calls())
    for k, results in enumerate(batches):
        assert sums(results) == [n + k for n in range(50)]
    assert single.payload == b'{"sum": 2}'
    assert all(isinstance(error, ServiceError) and error.code == "ResourceNotFoundException"
               for error in missing)


@contextmanager
def pre_batch_server(address: str) -> Iterator[None]:
    """A ROUTER answering its first frame as servers before batches did: decoded as the
    seven-field Request, and a 400 with id 0 when that fails."""
    context = zmq.Context(1)
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(address)

    def answer() -> None:
        if not socket.poll(30_000):
            return
        identity, body = socket.recv_multipart()
        try:
            msgspec.msgpack.decode(body, type=PreBatchRequest)
            response = Response(0, 500, error_type="ServiceException", error_message="decoded")
        except msgspec.ValidationError as exc:
            response = Response(0, 400, error_type="InvalidRequestContentException",
                                error_message=f"Could not decode the request: {exc}.")
        socket.send_multipart([identity, encode(response)])

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        yield
    finally:
        thread.join()
        socket.close()
        context.term()


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_server_of_before_batches_refuses_them_rather_than_running_one_event(
        tmp_path: Path, asynchronous: bool) -> None:
    address = f"ipc://{tmp_path}/old"
    with pre_batch_server(address), ZmqClient(address, timeout_s=30) as client, \
            pytest.raises(InvalidRequestContentException, match="older than batch requests "
                          "needs batch=1") as raised:
        if asynchronous:
            asyncio.run(client.ainvoke_many("f", [{}, {}, {}]))
        else:
            client.invoke_many("f", [{}, {}, {}])
    assert "Expected `bytes`, got `None` - at `$[2]`" in str(raised.value)
