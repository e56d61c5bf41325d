"""Workers bound by cgroups: memory limit = memory size, CPU in proportion to memory.

Needs writable cgroups (v1 or v2); elsewhere these tests skip, saying why.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_until

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.pool.cgroups import detect

FUNCTIONS = str(Path(__file__).resolve().parent / "functions")
pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(detect().name == "rlimit",
                       reason="no writable cgroup v1 or v2 here (run as root, or delegate a "
                              "cgroup v2 subtree) — limits fall back to rlimits"),
]
MAX_USED = re.compile(r"Max Memory Used: (\d+) MB\t")


def test_out_of_memory_is_reported_as_lambda_does_and_the_pool_heals() -> None:
    with Invoker() as invoker:
        invoker.create_function(FunctionConfig(name="hog", handler="hog.handler",
                                               code=FUNCTIONS, memory_mb=128, timeout_s=30))
        assert invoker.call("hog", {"mb": 8}) == 8
        small = int(MAX_USED.search(invoker.logs("hog")[-1].message).group(1))
        assert 0 < small < 128
        result = invoker.invoke("hog", {"mb": 300})
        assert result.function_error == "Unhandled"
        document = json.loads(result.payload)
        assert document["errorType"] == "Runtime.ExitError"
        assert document["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
        report = invoker.logs("hog")[-1].message.splitlines()[-1]
        assert report.endswith("\tStatus: error\tError Type: Runtime.OutOfMemory\t"), report
        assert int(MAX_USED.search(report).group(1)) >= 120
        assert invoker.meter("hog")["oom_kills"] == 1
        assert invoker.call("hog", {"mb": 8}) == 8  # a fresh worker


def test_max_memory_used_grows_with_what_the_handler_allocates() -> None:
    with Invoker() as invoker:
        invoker.create_function(FunctionConfig(name="hog", handler="hog.handler",
                                               code=FUNCTIONS, memory_mb=512))
        used = []
        for mb in (1, 64, 200):
            invoker.call("hog", {"mb": mb})
            used.append(int(MAX_USED.search(invoker.logs("hog")[-1].message).group(1)))
        assert used[0] < used[1] < used[2] < 512
        assert used[2] >= 200


def test_cpu_is_given_in_proportion_to_memory() -> None:
    shares = {}
    with Invoker() as invoker:
        for memory in (128, 256):
            name = f"spin{memory}"
            invoker.create_function(FunctionConfig(name=name, handler="hog.handler",
                                                   code=FUNCTIONS, memory_mb=memory))
            shares[memory] = invoker.call(name, {"spin_s": 1.0})
    # 1 vCPU per 1,769 MB: 128 MB gets about 0.072 of a core, 256 MB about twice that.
    assert 0.03 < shares[128] < 0.15, shares
    assert 1.4 < shares[256] / shares[128] < 2.8, shares


def test_no_cgroup_remains_after_close() -> None:
    invoker = Invoker()
    invoker.create_function(FunctionConfig(name="hog", handler="hog.handler", code=FUNCTIONS))
    invoker.call("hog", {"mb": 1})
    parents = list(invoker._supervisor.cgroups.parents)
    assert all(parent.is_dir() for parent in parents)
    invoker.close()
    assert not any(os.path.exists(parent) for parent in parents)


_CRASHING_FRONT_END = """
import sys
from fastinvoke import FunctionConfig, Invoker
invoker = Invoker()
invoker.create_function(FunctionConfig(name="hog", handler="hog.handler", code=sys.argv[1]))
invoker.call("hog", {"mb": 1})
print(*invoker._supervisor.cgroups.parents, sep="\\n", flush=True)
print("READY", flush=True)
sys.stdin.read()  # until killed
"""


def test_groups_left_by_a_killed_front_end_are_removed_by_the_next_run() -> None:



    root = str(Path(__file__).resolve().parent.parent)
    crashing = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_FRONT_END, FUNCTIONS], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=root))
    try:
        parents = []
        for line in crashing.stdout:
            if line.strip() == "READY":
                break
            parents.append(line.strip())
        assert parents and all(os.path.isdir(parent) for parent in parents)
        crashing.send_signal(signal.SIGKILL)
        crashing.wait()
    finally:
        crashing.kill()
        crashing.stdin.close()
        crashing.stdout.close()
        crashing.wait()
    # The crashed run could not remove its groups; the next Invoker does, at start.
    with Invoker():
        wait_until(lambda: not any(os.path.exists(parent) for parent in parents),
                   timeout=10, message=lambda: f"left: {parents}")
