"""Lambda's response streaming: a Node.js handler wrapped in ``awslambda.streamifyResponse``
streams through the Runtime API's streaming mode, the bridge worker and the local hop;
``Invoker.invoke_stream`` / ``ainvoke_stream`` give the parts as they are written, and
``InvokeWithResponseStream`` over HTTP frames them as AWS's event stream for boto3."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from helpers import (
    NO_NODE,
    NODE_RUNTIME,
    ONE_VCPU_MB,
    MakeFunction,
    function_resource,
    write_code,
)
from http_server import serving

from fastinvoke import Invoker

pytestmark = pytest.mark.skipif(NODE_RUNTIME is None, reason=NO_NODE)

# Writes `parts` parts 100 ms apart; with {"fail": true} throws after them.
STREAMER = """
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  for (let i = 0; i < (event.parts || 5); i++) {
    responseStream.write(`part ${i}\\n`);
    await new Promise((resolve) => setTimeout(resolve, event.gapMs ?? 100));
  }
  if (event.fail) throw new TypeError('broke after the parts');
  responseStream.end();
});
"""


@pytest.fixture
def streamer(make_function: MakeFunction, tmp_path: Path) -> str:
    write_code(tmp_path / "streamer", {"index.js": STREAMER})
    return make_function("index.handler", code=str(tmp_path / "streamer"),
                         runtime=NODE_RUNTIME, memory_mb=ONE_VCPU_MB)


def test_parts_come_as_they_are_written(invoker: Invoker, streamer: str) -> None:
    started = time.monotonic()
    stream = invoker.invoke_stream(streamer, {})
    arrivals = []
    for part in stream:
        arrivals.append((time.monotonic() - started, part))
    assert [part for _, part in arrivals] == [f"part {i}\n".encode() for i in range(5)]
    # The first part arrives before the handler ends (5 parts 100 ms apart).
    assert arrivals[0][0] < arrivals[-1][0] - 0.3
    assert stream.result is not None and stream.result.function_error is None
    assert stream.result.request_id == stream.request_id
    # Invoke (buffered) gets the whole response.
    assert invoker.invoke(streamer, {}).payload == b"".join(part for _, part in arrivals)


def test_an_error_after_the_parts_ends_the_stream(invoker: Invoker, streamer: str) -> None:
    stream = invoker.invoke_stream(streamer, {"fail": True, "parts": 2, "gapMs": 0})
    assert list(stream) == [b"part 0\n", b"part 1\n"]
    assert stream.result is not None and stream.result.function_error == "Unhandled"
    document = json.loads(stream.result.payload)
    assert (document["errorType"], document["errorMessage"]) == ("TypeError",
                                                                 "broke after the parts")
    buffered = invoker.invoke(streamer, {"fail": True, "parts": 1, "gapMs": 0})
    assert buffered.function_error == "Unhandled"


def test_async_parts_and_a_function_that_does_not_stream(invoker: Invoker, streamer: str,
                                                         make_function: MakeFunction) -> None:
    echo = make_function("echo.handler")

    async def read(name: str, event: Any) -> list[bytes]:
        stream = await invoker.ainvoke_stream(name, event)
        return [part async for part in stream]

    assert asyncio.run(read(streamer, {"parts": 3, "gapMs": 10})) == [
        b"part 0\n", b"part 1\n", b"part 2\n"]
    assert asyncio.run(read(echo, {"whole": True})) == [b'{"whole": true}']


def _read_events(response: dict) -> tuple[list[tuple[float, bytes]], dict]:
    """boto3's event stream: (arrival time, payload) of each PayloadChunk, and the
    InvokeComplete event."""
    started, parts, complete = time.monotonic(), [], {}
    for event in response["EventStream"]:
        if "PayloadChunk" in event:
            parts.append((time.monotonic() - started, event["PayloadChunk"]["Payload"]))
        elif "InvokeComplete" in event:
            complete = event["InvokeComplete"]
    return parts, complete


def test_boto3_reads_a_streamed_response_as_it_is_written(tmp_path: Path) -> None:
    code = tmp_path / "streamer"
    write_code(code, {"index.js": STREAMER})
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource(
        "Streamer", "streamer", "index.handler", f"      MemorySize: {ONE_VCPU_MB}\n",
        code=code, runtime=NODE_RUNTIME))
    with serving(tmp_path, template=template) as server:
        client = server.client()
        response = client.invoke_with_response_stream(FunctionName="streamer", Payload=b"{}",
                                                      LogType="Tail")
        assert response["ExecutedVersion"] == "$LATEST"
        parts, complete = _read_events(response)
        assert [part for _, part in parts] == [f"part {i}\n".encode() for i in range(5)]
        # The first part arrives before the handler ends (5 parts 100 ms apart).
        assert parts[0][0] < parts[-1][0] - 0.3
        assert "ErrorCode" not in complete
        assert "REPORT RequestId:" in base64.b64decode(complete["LogResult"]).decode()
        failed = client.invoke_with_response_stream(
            FunctionName="streamer", Payload=json.dumps({"fail": True, "parts": 1}).encode())
        parts, complete = _read_events(failed)
        assert [part for _, part in parts] == [b"part 0\n"]
        assert (complete["ErrorCode"], complete["ErrorDetails"]) == ("TypeError",
                                                                     "broke after the parts")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke_with_response_stream(FunctionName="nobody", Payload=b"{}")


# An HTTP response through a function URL: a prelude, then the body in parts.
HTTP_STREAMER = """
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201, headers: {'Content-Type': 'text/plain', 'X-Kind': 'streamed'},
    cookies: ['session=1'],
  });
  for (let i = 0; i < 3; i++) {
    responseStream.write(`line ${i}\\n`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  responseStream.end();
});
"""


def test_a_streaming_function_url(tmp_path: Path) -> None:
    for name, source in (("http", HTTP_STREAMER), ("raw", STREAMER)):
        write_code(tmp_path / name, {"index.js": source})
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + "".join(function_resource(
        name.title(), name, "index.handler", f"      MemorySize: {ONE_VCPU_MB}\n"
        "      FunctionUrlConfig:\n        AuthType: NONE\n        InvokeMode: RESPONSE_STREAM\n",
        code=tmp_path / name, runtime=NODE_RUNTIME) for name in ("http", "raw")))
    with serving(tmp_path, template=template) as server:
        client = server.client()
        urls = {name: urlsplit(client.get_function_url_config(FunctionName=name)["FunctionUrl"])
                for name in ("http", "raw")}
        connection = http.client.HTTPConnection("127.0.0.1", urls["http"].port, timeout=30)
        started = time.monotonic()
        connection.request("GET", "/", headers={"Host": urls["http"].netloc})
        response = connection.getresponse()
        assert (response.status, response.getheader("X-Kind")) == (201, "streamed")
        assert response.getheader("Set-Cookie") == "session=1"
        assert response.getheader("Transfer-Encoding") == "chunked"
        first = response.readline()
        first_s = time.monotonic() - started
        rest = response.read()
        assert (first, rest) == (b"line 0\n", b"line 1\nline 2\n")
        assert first_s < time.monotonic() - started - 0.15  # before the handler ended
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", urls["raw"].port, timeout=30)
        connection.request("GET", "/", headers={"Host": urls["raw"].netloc})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "application/octet-stream"
        assert response.read() == b"".join(f"part {i}\n".encode() for i in range(5))
        connection.close()
