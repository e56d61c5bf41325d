"""Invocations sent to busy workers ahead of need (``fastinvoke.pool.ahead``), through real
workers: a function held to one worker with many invocations waiting gets them in
batches, and each still has its own output, its own outcome and exactly one run, whatever
one of them does to the worker (exits, hangs past its timeout, fails its Init).

Each test checks that batches were sent (the dispatcher counts them), so none passes
without the mechanism at work."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from helpers import MakeFunction, MakeInvoker, tail_text

from fastinvoke import Invoker

RUNS = "{runs}"
HANDLER = f'''
import os, sys, time, logging

def handler(event, context):
    n = event["n"]
    with open({RUNS!r}, "a") as runs:  # one line per run, to count them
        runs.write(f"{{n}}\\n")
    print(f"print-{{n}}")
    sys.stderr.write(f"stderr-{{n}}\\n")
    os.write(1, f"fd-{{n}}\\n".encode())  # around Python's streams
    if n == event.get("exit"):
        os._exit(3)
    if n == event.get("hang"):
        time.sleep(30)
    time.sleep(event.get("sleep", 0))
    return n * 2
'''


def _function(make_function: MakeFunction, inv: Invoker, tmp_path: Path,
              **config: Any) -> tuple[str, Path]:
    runs = tmp_path / "runs"
    runs.touch()
    runs.chmod(0o666)  # the sandboxed function runs as its own user
    tmp_path.chmod(0o777)
    source = HANDLER.replace(RUNS, str(runs))
    return make_function("fn.handler", invoker=inv, source=source, **config), runs


def _invoke_all(inv: Invoker, name: str, events: list[dict[str, Any]]) -> list[Any]:
    async def all_at_once() -> list[Any]:
        return await asyncio.gather(*(inv.ainvoke(name, event, log_type="Tail")
                                      for event in events))
    return asyncio.run(all_at_once())


def _runs(runs: Path) -> list[int]:
    return sorted(int(line) for line in runs.read_text().split())


def test_each_invocation_of_a_batch_keeps_its_own_output(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    inv = make_invoker(max_workers=1)
    name, runs = _function(make_function, inv, tmp_path)
    results = _invoke_all(inv, name, [{"n": n} for n in range(60)])
    assert inv._dispatcher._ahead.batches > 0
    for n, result in enumerate(results):
        assert result.function_error is None and json.loads(result.payload) == n * 2
        lines = [line for line in tail_text(result).splitlines()
                 if line.split("-")[0] in ("print", "stderr", "fd")]
        assert sorted(lines) == sorted([f"print-{n}", f"stderr-{n}", f"fd-{n}"]), n
    assert _runs(runs) == list(range(60))


def test_a_worker_exiting_mid_batch_fails_that_invocation_alone(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    inv = make_invoker(max_workers=1)
    name, runs = _function(make_function, inv, tmp_path)
    results = _invoke_all(inv, name, [{"n": n, "exit": 17} for n in range(40)])
    assert inv._dispatcher._ahead.batches > 0
    for n, result in enumerate(results):
        if n == 17:
            assert json.loads(result.payload)["errorType"] == "Runtime.ExitError"
            assert "print-17" in tail_text(result)
        else:
            assert result.function_error is None and json.loads(result.payload) == n * 2
    # Those it was sent ahead and never began ran once, on the next worker.
    assert _runs(runs) == list(range(40))


def test_an_invocation_past_its_timeout_in_a_batch_ends_alone(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    inv = make_invoker(max_workers=1)
    name, runs = _function(make_function, inv, tmp_path, timeout_s=1)
    results = _invoke_all(inv, name, [{"n": n, "hang": 5} for n in range(20)])
    assert inv._dispatcher._ahead.batches > 0
    for n, result in enumerate(results):
        if n == 5:
            assert json.loads(result.payload)["errorType"] == "Sandbox.Timedout"
        else:
            assert result.function_error is None and json.loads(result.payload) == n * 2
    assert _runs(runs) == list(range(20))


def test_a_failed_init_answers_every_waiting_invocation(
        make_invoker: MakeInvoker, make_function: MakeFunction) -> None:
    inv = make_invoker(max_workers=1)
    name = make_function("broken.handler", invoker=inv, prefork=False,
                         source="raise RuntimeError('no init')\n")
    results = _invoke_all(inv, name, [{"n": n} for n in range(12)])
    for result in results:
        assert result.function_error == "Unhandled"
        assert "no init" in json.loads(result.payload)["errorMessage"]


def test_no_batches_while_the_function_may_start_more_workers(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    """As Lambda starts an environment for each concurrent invocation, a function below
    its worker limit gets new workers, not invocations queued behind busy ones."""
    inv = make_invoker(max_workers=64)
    name, runs = _function(make_function, inv, tmp_path)
    results = _invoke_all(inv, name, [{"n": n} for n in range(30)])
    assert [json.loads(result.payload) for result in results] == [n * 2 for n in range(30)]
    assert inv._dispatcher._ahead.batches == 0


def test_no_batches_for_a_function_whose_invocations_take_long(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path) -> None:
    """An invocation given to a busy worker would wait for the one it runs even when
    another worker frees up first: not worth it where the hop's wake-ups are small."""
    inv = make_invoker(max_workers=1)
    name, runs = _function(make_function, inv, tmp_path)
    results = _invoke_all(inv, name, [{"n": n, "sleep": 0.05} for n in range(6)])
    assert [json.loads(result.payload) for result in results] == [n * 2 for n in range(6)]
    assert inv._dispatcher._ahead.batches == 0
