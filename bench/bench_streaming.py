"""Response streaming (a Node.js handler in ``awslambda.streamifyResponse``), against the
same handler's response taken whole by ``invoke`` in the same run.

* First byte: 10 parts written 50 ms apart; the time to the first part and to the last
  through ``Invoker.invoke_stream``, against the time to the whole answer of ``invoke``.
* Throughput: a 20 MB response streamed in 1 MB parts (Lambda's streaming limit) through
  ``invoke_stream``, against a 6 MB one taken whole by ``invoke`` (the buffered limit),
  in MB/s.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from .bench_runtimes import _node_add
from .data import Sizes

NODE_CODE = str(Path(__file__).resolve().parent / "functions" / "node")
MB = 1024 * 1024
PARTS = {"parts": 10, "size": 64, "gapMs": 50}
_ROUNDS = 10


def _invoker() -> Any:
    from fastinvoke import FunctionConfig, Invoker

    invoker = Invoker()
    invoker.create_function(FunctionConfig(
        name="streamer", handler="streamer.handler", code=NODE_CODE,
        runtime=_node_add()["runtime"], memory_mb=1769, timeout_s=60))
    return invoker


def _streamed(invoker: Any, event: dict[str, int]) -> tuple[float, float, int]:
    """(seconds to the first part, to the last, bytes) of one streamed invocation."""
    started = time.perf_counter()
    first, size = 0.0, 0
    stream = invoker.invoke_stream("streamer", event)
    for part in stream:
        first = first or time.perf_counter() - started
        size += len(part)
    if stream.result.function_error is not None:
        raise AssertionError(stream.result.payload[:300])
    return first, time.perf_counter() - started, size


def _whole(invoker: Any, event: dict[str, int]) -> tuple[float, int]:
    started = time.perf_counter()
    result = invoker.invoke("streamer", event)
    if result.function_error is not None:
        raise AssertionError(result.payload[:300])
    return time.perf_counter() - started, len(result.payload)


def first_byte_streamed(sizes: Sizes) -> dict[str, Any]:
    with _invoker() as invoker:
        _streamed(invoker, PARTS)  # the worker's cold start
        runs = [_streamed(invoker, PARTS) for _ in range(_ROUNDS)]
    return {"metrics": {"first_ms": statistics.median(r[0] for r in runs) * 1e3,
                        "last_ms": statistics.median(r[1] for r in runs) * 1e3},
            "samples": len(runs)}


def first_byte_whole(sizes: Sizes) -> dict[str, Any]:
    with _invoker() as invoker:
        _whole(invoker, PARTS)
        runs = [_whole(invoker, PARTS)[0] for _ in range(_ROUNDS)]
    whole_ms = statistics.median(runs) * 1e3
    return {"metrics": {"first_ms": whole_ms, "last_ms": whole_ms}, "samples": len(runs)}


def throughput_streamed(sizes: Sizes) -> dict[str, Any]:
    event = {"parts": 20, "size": MB, "gapMs": 0}
    with _invoker() as invoker:
        _streamed(invoker, event)
        runs = [_streamed(invoker, event) for _ in range(_ROUNDS)]
    if any(size != 20 * MB for _, _, size in runs):
        raise AssertionError("a streamed response was not 20 MB")
    return {"metrics": {"mb_per_s": statistics.median(20 / last for _, last, _ in runs)},
            "samples": len(runs)}


def throughput_whole(sizes: Sizes) -> dict[str, Any]:
    event = {"parts": 6, "size": MB, "gapMs": 0}
    with _invoker() as invoker:
        _whole(invoker, event)
        runs = [_whole(invoker, event) for _ in range(_ROUNDS)]
    if any(size != 6 * MB for _, size in runs):
        raise AssertionError("a buffered response was not 6 MB")
    return {"metrics": {"mb_per_s": statistics.median(6 / seconds for seconds, _ in runs)},
            "samples": len(runs)}
