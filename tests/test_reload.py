"""Hot reload in ``fastinvoke serve --template`` (on by default): a saved change to a
function's code answers the next invocations, one in flight finishes on the old code, a
change that breaks Init is said and answered until the next good save, and the template's
own changes add and remove functions.  A real server, real file writes, boto3."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

from helpers import wait_until
from http_server import Server

HANDLER = """import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return "{answer}"
"""


def _template(path: Path, code: Path, names: tuple[str, ...]) -> None:
    path.write_text("Resources:\n" + "".join(f"""\
  {name.title()}:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {name}
      Runtime: python3.{sys.version_info.minor}
      CodeUri: {code}
      Handler: app.handler
      Timeout: 10
""" for name in names))


def _answer(client: Any, name: str, event: dict | None = None) -> Any:
    result = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    return json.loads(result["Payload"].read())


def test_a_save_reloads_and_a_broken_one_is_said(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER.format(answer="one"))
    template = tmp_path / "template.yaml"
    _template(template, code, ("hot",))
    server = Server(tmp_path / "state", template=template)
    try:
        client = server.client()
        assert _answer(client, "hot") == "one"
        # An invocation in flight finishes on the old code.
        slow: list[Any] = []
        call = threading.Thread(target=lambda: slow.append(_answer(client, "hot",
                                                                   {"sleep": 1.5})))
        call.start()
        wait_until(lambda: server.descendants())  # (it has its worker)
        (code / "app.py").write_text(HANDLER.format(answer="two"))
        wait_until(lambda: _answer(client, "hot") == "two", timeout=10)
        call.join()
        assert slow == ["one"]
        (code / "app.py").write_text("def handler(event, context):\n    return (\n")
        wait_until(lambda: _answer(client, "hot").get("errorType") if isinstance(
            _answer(client, "hot"), dict) else None, timeout=10)
        assert _answer(client, "hot")["errorType"] == "Runtime.UserCodeSyntaxError"
        (code / "app.py").write_text(HANDLER.format(answer="three"))
        wait_until(lambda: _answer(client, "hot") == "three", timeout=10)
        # The template's own changes: a function added, then removed.
        _template(template, code, ("hot", "cold"))
        wait_until(lambda: "cold" in [f["FunctionName"] for f in
                                      client.list_functions()["Functions"]], timeout=10)
        assert _answer(client, "cold") == "three"
        _template(template, code, ("hot",))
        wait_until(lambda: "cold" not in [f["FunctionName"] for f in
                                          client.list_functions()["Functions"]], timeout=10)
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert "hot reloaded, and its Init failed: Runtime.UserCodeSyntaxError" in err
    assert "cold added" in err and "cold removed: it left the template" in err
