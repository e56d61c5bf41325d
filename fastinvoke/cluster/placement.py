"""Ray, as the front-end uses it: the cluster's nodes, an agent on each, and a
reservation of CPU and memory for each worker (a placement group of one bundle).

A reservation holds a worker's share for as long as the worker lives, on the node Ray
chose for it: ``num_cpus`` is the function's memory over 1,769 MB (Lambda's vCPU per
memory), rounded *down* to Ray's precision of 4 decimals (rounding up could leave a
worker out that fits), and ``memory`` its memory size; both divided by ``overcommit``
for load tests on small clusters.  Ray leaves a request that no node can ever meet
pending without an error, so ``check`` compares sizes with the nodes first.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from ..errors import InvalidParameterValueException, ServiceException
from ..pool.cgroups import MB_PER_VCPU
from .agent import NodeAgent

NAMESPACE = "fastinvoke"
_MiB = 1 << 20


def worker_resources(memory_mb: int, overcommit: float) -> tuple[float, int]:
    """(num_cpus, memory in bytes) one worker of a function of ``memory_mb`` reserves."""
    cpus = math.floor(memory_mb / MB_PER_VCPU / overcommit * 10_000) / 10_000
    return max(cpus, 0.0001), int(memory_mb * _MiB / overcommit)


class Ray:
    """A connection to a Ray cluster (made here, or the caller's own if Ray is already
    initialised in this process: then it is left connected at ``close``)."""

    def __init__(self, address: str) -> None:
        try:
            import ray
        except ImportError:
            raise ServiceException(
                "ray_address needs Ray: pip install 'fastinvoke[ray]'") from None
        self._ray = ray
        self._owned = not ray.is_initialized()
        if self._owned:
            ray.init(address=address, namespace=NAMESPACE, logging_level="ERROR",
                     log_to_driver=False, configure_logging=False)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.agents: dict[str, Any] = {}  # node id -> its agent's actor handle

    # -- nodes -------------------------------------------------------------------------------

    def nodes(self) -> dict[str, tuple[float, int]]:
        """The alive nodes: id -> (CPUs, memory in bytes) they offer in all."""
        return {node["NodeID"]: (node["Resources"].get("CPU", 0.0),
                                 int(node["Resources"].get("memory", 0)))
                for node in self._ray.nodes() if node["Alive"]}

    def start_agents(self, node_ids: list[str], run: str, start: bytes) -> dict[str, Any]:
        """Ask the agents of ``node_ids`` (made where missing) to start a node process;
        return the calls, for ``answers``."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor = self._ray.remote(NodeAgent)
        calls = {}
        for node_id in node_ids:
            agent = self.agents.get(node_id)
            if agent is None:
                agent = self.agents[node_id] = actor.options(
                    name=f"fastinvoke-agent-{run}-{node_id[:16]}", namespace=NAMESPACE,
                    num_cpus=0, max_restarts=-1, max_task_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                ).remote()
            calls[node_id] = agent.start.remote(start)
        return calls

    def answers(self, calls: dict[str, Any], wait_s: float = 0.0) -> dict[str, Any]:
        """The calls of ``calls`` that have ended (waiting up to ``wait_s`` for all): node
        id -> what they returned, or the error that ended them (a node gone meanwhile, an
        agent that cannot start)."""
        ready, _ = self._ray.wait(list(calls.values()), num_returns=len(calls),
                                  timeout=wait_s)
        ended = set(ready)
        results: dict[str, Any] = {}
        for node_id, call in calls.items():
            if call in ended:
                try:
                    results[node_id] = self._ray.get(call)
                except Exception as exc:  # reported, and tried again
                    results[node_id] = exc
        return results

    def forget_agent(self, node_id: str) -> None:
        agent = self.agents.pop(node_id, None)
        if agent is not None:
            self._ray.kill(agent, no_restart=True)

    # -- reservations ------------------------------------------------------------------------

    def reserve(self, cpus: float, memory: int) -> Any:
        """A reservation for one worker, placed by Ray where there is room (or pending)."""
        from ray.util.placement_group import placement_group

        return placement_group([{"CPU": cpus, "memory": memory}], strategy="STRICT_PACK")

    def placed(self) -> dict[str, str]:
        """Reservations placed: placement group id (hex) -> the node holding it."""
        from ray.util.placement_group import placement_group_table

        return {group_id: table["bundles_to_node_id"][0]
                for group_id, table in placement_group_table().items()
                if table["state"] == "CREATED" and table["bundles_to_node_id"]}

    def release(self, group: Any) -> None:
        from ray.util.placement_group import remove_placement_group

        with contextlib.suppress(Exception):  # gone with its node: nothing to release
            remove_placement_group(group)

    def close(self) -> None:
        """Stop every node process and wait for them (their workers end first), then the
        agents."""
        stops = [agent.stop.remote() for agent in self.agents.values()]
        with contextlib.suppress(Exception):  # an agent gone: its node process went with it
            self._ray.get(stops, timeout=60)
        for node_id in list(self.agents):
            self.forget_agent(node_id)
        if self._owned:
            self._ray.shutdown()


def refusal(nodes: dict[str, tuple[float, int]], name: str, memory_mb: int,
            overcommit: float) -> str | None:
    """Why no node of the cluster could hold a worker of the function, or None."""
    cpus, memory = worker_resources(memory_mb, overcommit)
    if any(cpus <= node_cpus and memory <= node_memory
           for node_cpus, node_memory in nodes.values()):
        return None
    largest = ", ".join(f"{node_cpus:g} CPU / {node_memory // _MiB} MB"
                        for node_cpus, node_memory in sorted(nodes.values(), reverse=True)[:3])
    return (
        f"a worker of {name} reserves {cpus:g} CPU and {memory // _MiB} MB (MemorySize "
        f"{memory_mb} MB, overcommit {overcommit:g}); no Ray node has that much "
        f"({largest or 'no node is alive'}): lower MemorySize, add a bigger node, or raise "
        "the overcommit factor")


def check(nodes: dict[str, tuple[float, int]], name: str, memory_mb: int,
          overcommit: float) -> None:
    """Refuse a function whose worker no node of the cluster could hold."""
    reason = refusal(nodes, name, memory_mb, overcommit)
    if reason is not None:
        raise InvalidParameterValueException(reason)

