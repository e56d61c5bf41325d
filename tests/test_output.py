"""A function's output leaves its environment as it is written (a pipe the front-end
drains), so what it prints is never held in, nor charged to, the function's memory."""

from __future__ import annotations

from helpers import FUNCTIONS, log_of, report_of, tail_text

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.pool.cgroups import detect

HUNDRED_MB = 100


def test_a_256_mb_function_that_prints_100_mb_completes() -> None:
    """Buffered in the worker (as before the pipe) this was an out-of-memory kill; now the
    worker's memory stays what its code uses, Tail is still the last 4 KB, and every byte
    is in the stored log."""
    with Invoker() as invoker:
        invoker.create_function(FunctionConfig(name="loud", handler="loud.handler",
                                               code=FUNCTIONS, memory_mb=256, timeout_s=60))
        result = invoker.invoke("loud", {"megabytes": HUNDRED_MB}, log_type="Tail")
        assert result.function_error is None, result.payload
        peak_rss_mb = int(result.payload)
        assert peak_rss_mb < HUNDRED_MB // 2  # the worker never held its output
        tail = tail_text(result)
        assert tail.endswith("\n") and "the last line\nEND RequestId: " in tail
        assert len(tail.encode()) <= 4096
        text = log_of(invoker, "loud", result.request_id)
        assert text is not None
        assert text.count("y" * 1000) >= HUNDRED_MB  # each 1 MB line, whole
        used_mb = int(report_of(text)["max_used"])
        if detect().name != "rlimit":  # the group's peak: what the worker's memory held
            assert used_mb < 200, text[-400:]
        # and the same worker goes on answering, its pipe empty
        again = invoker.invoke("loud", {"megabytes": 0}, log_type="Tail")
        assert "y" * 100 not in tail_text(again)
