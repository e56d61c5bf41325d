"""``serve --debug FUNCTION``: the function's one worker waits for a debugger; a real DAP
client attaches to debugpy, sets a breakpoint, stops there during an invocation made
with boto3, and lets it finish."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import function_resource, wait_until
from http_server import Server

pytest.importorskip("debugpy", reason="debugpy is not installed: pip install -e '.[test]'")

HANDLER = """def handler(event, context):
    doubled = event["n"] * 2
    return {"doubled": doubled}
"""


class Dap:
    """A minimal Debug Adapter Protocol client (what VS Code speaks to debugpy)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""
        self.seq = 0

    def request(self, command: str, **arguments: Any) -> None:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command,
                           "arguments": arguments}).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def read(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = int(head.split(b":")[1])
        while len(self.buffer) < length:
            self.buffer += self.sock.recv(65536)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return json.loads(body)

    def until(self, kind: str, name: str) -> dict[str, Any]:
        """Read until the event or response ``name`` (of ``kind``) comes."""
        while True:
            message = self.read()
            if message["type"] == kind and message.get(
                    "event" if kind == "event" else "command") == name:
                return message


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_debugger_stops_at_a_breakpoint(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource("Dbg", "dbg", "app.handler",
                                                           code=code))
    port = _free_port()
    server = Server(tmp_path / "state", "--debug", "dbg", "--debug-port", str(port),
                    "--no-watch", template=template)
    try:
        client = server.client()
        answers: list[Any] = []
        call = threading.Thread(target=lambda: answers.append(json.loads(client.invoke(
            FunctionName="dbg", Payload=b'{"n": 21}')["Payload"].read())))
        call.start()  # its worker starts, and waits for the debugger
        # It says so once debugpy listens (its output goes to the function's Init log
        # until its first invocation).
        init_log = tmp_path / "state" / "logs" / "dbg.init.log"
        wait_until(lambda: init_log.exists() and "waiting for a debugger" in
                   init_log.read_text(), timeout=30)
        dap = Dap(port)
        dap.request("initialize", adapterID="debugpy", clientID="fastinvoke-test",
                    pathFormat="path", linesStartAt1=True, columnsStartAt1=True)
        dap.until("response", "initialize")
        dap.request("attach", justMyCode=False)
        dap.until("event", "initialized")
        dap.request("setBreakpoints", source={"path": str(code / "app.py")},
                    breakpoints=[{"line": 3}])
        dap.request("configurationDone")
        stopped = dap.until("event", "stopped")
        assert stopped["body"]["reason"] == "breakpoint"
        dap.request("stackTrace", threadId=stopped["body"]["threadId"])
        frame = dap.until("response", "stackTrace")["body"]["stackFrames"][0]
        assert (frame["name"], frame["line"]) == ("handler", 3)
        assert answers == []  # stopped: the invocation waits
        dap.request("continue", threadId=stopped["body"]["threadId"])
        call.join(timeout=30)
        assert answers == [{"doubled": 42}]
        dap.sock.close()
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert f"waits for a debugger on 127.0.0.1:{port}" in err
