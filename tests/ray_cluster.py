"""A local Ray cluster for the tests, run by this script outside the test process's tree.

``python tests/ray_cluster.py`` starts a 2-node cluster on loopback (a 2-CPU head with
512 MiB to reserve, a 2-CPU node with 6 GiB), prints one JSON line (its address and this
process's pid), then obeys one command a line on stdin, answering one JSON line each:
``add CPUS MEMORY`` (a node; its id), ``remove NODE_ID``.  End of stdin shuts the cluster
down.  ``conftest.ray_cluster`` starts it through a parent that exits at once, so neither
this process nor Ray's are the test process's descendants: the tests that check that an
Invoker leaves no process behind see none of Ray's.
"""

from __future__ import annotations

import json
import os
import sys

HEAD_MEMORY = 512 << 20
NODE_MEMORY = 6 << 30
_STORE = 80 << 20  # Ray's object store: fastinvoke puts nothing in it


def main() -> None:
    # Linux binds a multi-node cluster to the host's address; this keeps every node on
    # 127.0.0.1, and nothing of the tests leaves the machine.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "memory": HEAD_MEMORY, "object_store_memory": _STORE,
        "include_dashboard": False})
    cluster.add_node(num_cpus=2, memory=NODE_MEMORY, object_store_memory=_STORE)
    cluster.wait_for_nodes()
    added = {}
    _say({"address": cluster.address, "pid": os.getpid()})
    try:
        for line in sys.stdin:
            command, *args = line.split()
            if command == "add":
                node = cluster.add_node(num_cpus=int(args[0]), memory=int(args[1]),
                                        object_store_memory=_STORE)
                cluster.wait_for_nodes()
                added[node.node_id] = node
                _say({"node_id": node.node_id})
            elif command == "remove":
                cluster.remove_node(added.pop(args[0]))
                _say({"removed": args[0]})
    finally:
        cluster.shutdown()


def _say(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
