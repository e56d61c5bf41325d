"""The node agent: the Ray actor, one per node and front-end, that starts the front-end's
node process on its node.

A Ray worker process is threaded and was not started for fastinvoke, so nothing is forked
in it: the agent starts ``python -m fastinvoke.cluster.node`` as a new process, hands it
its ``Start`` (with the CURVE keys) on a pipe, and keeps the pipe open: when the agent
ends, for whatever reason, the node process sees the pipe close and ends too, with its
workers.  Ray restarts a killed agent (``max_restarts``); the front-end then asks the new
one for a new node process.
"""

from __future__ import annotations

import os
import subprocess
import sys


class NodeAgent:
    """Made by the front-end as a Ray actor pinned to one node (``backend``)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, start: bytes) -> str:
        """Start the node process (ending any earlier one), bound to this node's address
        in the cluster; return its ZeroMQ endpoint."""
        import msgspec
        import ray.util

        from .protocol import decode_start, encode_start

        self.stop()
        node_id = ray.get_runtime_context().get_node_id()
        cpus = next((node["Resources"].get("CPU", 0.0) for node in ray.nodes()
                     if node["NodeID"] == node_id), 0.0)
        # This actor's parent is the node's raylet, which runs at the node's own priority.
        niceness = os.getpriority(os.PRIO_PROCESS, os.getppid())
        start = encode_start(msgspec.structs.replace(
            decode_start(start), host=ray.util.get_node_ip_address(), cpus=cpus,
            niceness=niceness))
        self._process = process = subprocess.Popen(
            [sys.executable, "-m", "fastinvoke.cluster.node"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        process.stdin.write(start + b"\n")
        process.stdin.flush()
        endpoint = process.stdout.readline().decode().strip()
        if not endpoint:
            code = process.wait()
            raise RuntimeError(f"fastinvoke's node process ended at start (exit {code}); its "
                               "error is in this Ray worker's log")
        return endpoint

    def stop(self, wait_s: float = 30.0) -> None:
        """End the node process (its workers end with it) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        process.stdin.close()  # the node's signal to stop
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
