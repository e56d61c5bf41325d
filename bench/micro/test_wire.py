"""One invocation's messages on the worker channel: msgspec Structs vs stdlib json.

The dispatcher encodes an Invoke and decodes a Reply per invocation; the worker does the
opposite.  The json rows carry the same fields as a list (the Structs are array-like);
stdlib json has no bytes, so the event and result ride as text there.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.data import ADD_EVENT_BYTES, ADD_RESULT
from fastinvoke import wire

REQUEST_ID = "8f2c7e1a-3b4d-4e5f-9a6b-7c8d9e0f1a2b"
DEADLINE_MS = 1_718_000_000_000
ARN = "arn:aws:lambda:us-east-1:123456789012:function:add"
INVOKE = wire.Invoke(REQUEST_ID, DEADLINE_MS, ARN, ADD_EVENT_BYTES)
REPLY = wire.Reply(REQUEST_ID, 41_000, None, 21_000, ADD_RESULT)
INVOKE_FIELDS = ["invoke", REQUEST_ID, DEADLINE_MS, ARN, ADD_EVENT_BYTES.decode(), None, None, None]
JSON_INVOKE = json.dumps(INVOKE_FIELDS, separators=(",", ":")).encode()


@pytest.mark.benchmark(group="encode Invoke")
def test_encode_msgspec(benchmark: Any) -> None:
    """As dispatch.py does it: build the Struct, then encode."""
    encode, invoke = wire.encode_header, wire.Invoke

    def run() -> bytes:
        return encode(invoke(REQUEST_ID, DEADLINE_MS, ARN, ADD_EVENT_BYTES))

    assert wire.decode_to_worker(benchmark(run)) == INVOKE


@pytest.mark.benchmark(group="encode Invoke")
def test_encode_stdlib_json(benchmark: Any) -> None:
    dumps = json.dumps

    def run() -> bytes:
        fields = [
            "invoke",
            REQUEST_ID,
            DEADLINE_MS,
            ARN,
            ADD_EVENT_BYTES.decode(),
            None,
            None,
            None,
        ]
        return dumps(fields, separators=(",", ":")).encode()

    assert benchmark(run) == JSON_INVOKE


@pytest.mark.benchmark(group="decode Invoke")
def test_decode_msgspec(benchmark: Any) -> None:
    """As the worker does it: one prebuilt decoder for the ToWorker union."""
    assert benchmark(wire.decode_to_worker, wire.encode_header(INVOKE)) == INVOKE


@pytest.mark.benchmark(group="decode Invoke")
def test_decode_stdlib_json(benchmark: Any) -> None:
    assert benchmark(json.loads, JSON_INVOKE) == INVOKE_FIELDS


@pytest.mark.benchmark(group="decode Reply")
def test_decode_reply_msgspec(benchmark: Any) -> None:
    """The front-end's side: the worker's Reply."""
    assert benchmark(wire.decode_from_worker, wire.encode_header(REPLY)) == REPLY
