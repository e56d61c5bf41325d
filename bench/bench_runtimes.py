"""Node.js through the Runtime API, against Python on the local hop and a bare ``node``.

Latency: the warm synchronous call p50/p99 of the add handler in Node.js
(``functions/node/add.js``, callback style, run by the bridge worker and the shipped
bootstrap over the Runtime API), against the same call of the Python add handler
(``functions/add.py``) on the local hop (shared memory); both on ``Invoker()`` with the
same memory size, each in its own fresh runner process, measured as ``bench_latency``
measures.

Cold start: a new Node.js worker's first reply (``recycle``, then one timed ``invoke``:
the bridge's fork, the ``node`` process start, the bootstrap and handler loading, the
first invocation), against a fresh ``node -e ''`` process, timed from spawn to exit.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .bench_coldstart import fork_cold_starts, summary
from .bench_latency import FUNCTIONS_DIR, _time_calls
from .data import ADD_EVENT, ADD_RESULT, MEMORY_MB, Sizes

NODE_CODE = str(Path(FUNCTIONS_DIR) / "node")


def _node_add() -> dict[str, Any]:
    """FunctionConfig fields of the Node.js add, on this machine's Node.js major."""
    from fastinvoke.config import local_node

    local = local_node()
    if local is None:
        raise SystemExit("bench runtimes: node is not on the PATH; install Node.js")
    return {"handler": "add.handler", "code": NODE_CODE, "runtime": f"nodejs{local[1]}.x"}


def _warm_latency(function: dict[str, Any], sizes: Sizes) -> dict[str, Any]:
    from fastinvoke import FunctionConfig, Invoker

    with Invoker() as inv:
        inv.create_function(FunctionConfig(name="add", memory_mb=MEMORY_MB, **function))
        invoke = inv.invoke
        outcome = _time_calls(lambda: invoke("add", ADD_EVENT).payload, ADD_RESULT, sizes)
        if inv.meter("add")["cold_starts"] != 1:
            raise AssertionError(f"a worker was replaced during the run: {inv.meter('add')}")
        return outcome


def python_warm(sizes: Sizes) -> dict[str, Any]:
    return _warm_latency({"handler": "add.lambda_handler", "code": FUNCTIONS_DIR}, sizes)


def node_warm(sizes: Sizes) -> dict[str, Any]:
    return _warm_latency(_node_add(), sizes)


def _node_start_once(node: str) -> int:
    started = time.perf_counter_ns()
    subprocess.run([node, "-e", ""], check=True)
    return time.perf_counter_ns() - started


def node_fresh(sizes: Sizes) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("bench runtimes: node is not on the PATH; install Node.js")
    _node_start_once(node)  # warm the page cache, as the worker's template run did
    gc.collect()
    return summary([_node_start_once(node) for _ in range(sizes.coldstarts)])


def node_new_worker(sizes: Sizes) -> dict[str, Any]:
    return summary(fork_cold_starts(sizes.coldstarts, function=_node_add()))
