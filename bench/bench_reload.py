"""Hot reload (``fastinvoke serve --template``, which watches by default): from a save of
the handler's file to the first answer computed by the new code, over 20 saves, against a
fresh ``python`` that imports the same handler (what any reload that starts an
interpreter costs at least; SAM's is published at 10 s, LocalStack's at 700 ms).
"""

from __future__ import annotations

import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .bench_http import _process
from .data import Sizes

SAVES = 20
_READY = re.compile(rb"^fastinvoke: serving the Lambda API on http://[^:]+:(\d+)")
HANDLER = "def handler(event, context):\n    return {answer}\n"


def _template(directory: Path) -> Path:
    template = directory / "template.yaml"
    template.write_text(json.dumps({"Resources": {"Hot": {
        "Type": "AWS::Serverless::Function",
        "Properties": {"FunctionName": "hot", "Handler": "app.handler",
                       "CodeUri": str(directory / "code"), "MemorySize": 1769,
                       "Runtime": f"python3.{sys.version_info.minor}"}}}}))
    return template


def save_to_answer(sizes: Sizes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as tmp:
        directory = Path(tmp)
        (directory / "code").mkdir()
        handler = directory / "code" / "app.py"
        handler.write_text(HANDLER.format(answer=-1))
        command = [sys.executable, "-m", "fastinvoke", "serve", "--port", "0", "--no-api",
                   "--state-dir", str(directory / "state"), "--template",
                   str(_template(directory)), "--no-sandbox"]
        with _process(command, _READY) as (port,):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

            def answer() -> Any:
                connection.request("POST", "/2015-03-31/functions/hot/invocations", b"{}")
                return json.loads(connection.getresponse().read())

            answer()
            samples = []
            for number in range(SAVES):
                started = time.perf_counter()
                handler.write_text(HANDLER.format(answer=number))
                while answer() != number:
                    if time.perf_counter() - started > 30:
                        raise AssertionError(f"save {number} never answered")
                samples.append(time.perf_counter() - started)
            connection.close()
    return {"metrics": {"p50_ms": statistics.median(samples) * 1e3,
                        "min_ms": min(samples) * 1e3}, "samples": len(samples)}


def fresh_import(sizes: Sizes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as tmp:
        (Path(tmp) / "app.py").write_text(HANDLER.format(answer=0))
        samples = []
        for _ in range(SAVES):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import app; app.handler({}, None)"],
                           cwd=tmp, check=True)
            samples.append(time.perf_counter() - started)
    return {"metrics": {"p50_ms": statistics.median(samples) * 1e3,
                        "min_ms": min(samples) * 1e3}, "samples": len(samples)}
