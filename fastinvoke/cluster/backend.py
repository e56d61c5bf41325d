"""The front-end's pools on a Ray cluster: the supervisor's place when ``ray_address`` is set.

``ClusterSupervisor`` has the local ``Supervisor``'s interface (``add``, ``remove``,
``renew``, ``workers``, ``alarm``, ``start``, ``stop``) so the dispatcher, the functions
and the Event queue work unchanged.  Its thread does what may be slow (every Ray call, and
zipping a function's code) with the lock released:

* **nodes**: at start and every second, the cluster's alive nodes; each new one gets an
  agent and, through it, a node process this front-end links to (``link``), but this
  process's own node, whose workers are this process's (``local``); a node whose link
  fell silent is asked for a new node process when Ray says it is alive again;
* **code**: each function's code, zipped once per configuration, deployed to every node
  (Init runs on each node when the function is created, as it does locally);
* **placement**: slots waiting for a reservation get one (``placement.Ray.reserve``);
  placed ones go to the dispatcher; released ones are given back;
* **deadlines and keep-warm**, as the local supervisor does for processes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import secrets
import select
import threading
import zipfile

import msgspec
import zmq

from .._core import monotonic_ns
from ..config import FunctionConfig
from ..errors import InvalidParameterValueException
from ..pool.alarm import Alarm
from ..pool.failures import fail_queue
from ..pool.hop import Hop
from ..pool.records import FunctionPool
from . import protocol
from .link import Keys, NodeLink, RemoteNode
from .local import LocalNode
from .placement import Ray, check, refusal, worker_resources
from .relay import Relay
from .slots import STARVED_NS, Slots

_log = logging.getLogger("fastinvoke")

SCAN_EVERY_NS = 1_000_000_000  # how often the cluster's nodes are looked at
# While reservations wait for Ray: often at first (Ray places one in a few ms), then
# less, once they wait for room.
_PLACING_POLL_NS = 1_000_000
_WAITING_POLL_NS = 50_000_000
_ORPHAN_AFTER_S = 10.0  # a node process outlives a silent front-end this long
_START_WAIT_S = 60.0  # how long a new Invoker waits for the nodes' processes


class ClusterSupervisor:
    def __init__(self, hop: Hop, state_dir: str, address: str, region: str,
                 keep_warm_s: float, overcommit: float, cpu_limits: str,
                 memory_limits: bool, sandbox: bool) -> None:
        self.ray = Ray(address)  # first: it may fail (no cluster there) before anything opens
        self._state_dir = state_dir
        self._hop = hop
        self.lock = hop.lock
        self.alarm = Alarm()
        self.overcommit = overcommit
        self.pools: dict[str, FunctionPool] = {}
        self.workers = Slots(hop, self.alarm, int(keep_warm_s * 1e9), hop.add_link,
                             self._refusal)
        self.links: dict[str, NodeLink] = {}  # Ray node id -> its workers' link
        self.nodes: dict[str, tuple[float, int]] = {}  # alive: (CPUs, memory bytes)
        self._packages: dict[str, tuple[int, str, bytes]] = {}  # name -> (generation, sha, zip)
        self._keys = Keys()
        self._run_id = secrets.token_hex(4)
        self._settings = protocol.Start(
            self._run_id, protocol.PROTOCOL, "", self._keys.node_public,
            self._keys.node_secret, self._keys.client_public, keep_warm_s, cpu_limits,
            memory_limits, sandbox, region, _ORPHAN_AFTER_S)
        self._context = zmq.Context(1)
        self._relay = Relay(self.lock, self.workers.finished, self.workers.recycled,
                            self._lost)
        hop.remote_answers = self._relay
        self._stopping = False
        self._next_scan_ns = 0
        self._starting: dict[str, object] = {}  # node id -> its agent's start call
        # The nodes now (creating a function checks that one can hold it), each with its
        # node process: the first function need not wait for them.
        self._scan()
        self._link_started(_START_WAIT_S)
        self._thread = threading.Thread(target=self._run, name="fastinvoke-cluster",
                                        daemon=True)

    def start(self) -> None:
        self._relay.start()
        self._thread.start()

    # -- pools (lock held but ``check``) ------------------------------------------------------

    def check(self, config: FunctionConfig) -> None:
        """Refuse a function that no node of the cluster could hold a worker of, or one
        with layers (only its code is shipped to the nodes)."""
        if config.layers:
            raise InvalidParameterValueException(
                f"{config.name} has layers, which fastinvoke does not ship to Ray nodes yet: "
                "put the layers' packages in the function's code directory to run it on Ray")
        check(self.nodes, config.name, config.memory_mb, self.overcommit)

    def _refusal(self, pool: FunctionPool) -> str | None:
        return refusal(self.nodes, pool.name, pool.config.memory_mb, self.overcommit)

    def add(self, pool: FunctionPool) -> None:
        self.pools[pool.name] = pool
        pool.state = "ready"  # Init runs on the nodes; its failure comes back as answers
        self.alarm.ring()  # the thread deploys it

    def remove(self, pool: FunctionPool) -> None:
        self.pools.pop(pool.name, None)
        pool.deleted = True
        fail_queue(self._hop, pool, "Runtime.ExitError", "the function was deleted")
        self.workers.crash_all(pool, "the function was deleted")
        self._packages.pop(pool.name, None)
        for link in self.links.values():
            if link.deployed.pop(pool.name, None) is not None and link.up:
                link.send(protocol.Undeploy(pool.name))

    def renew(self, pool: FunctionPool) -> None:
        """New environments for a changed configuration: deployed anew to every node;
        idle slots of the old one are released, busy ones once they answer."""
        pool.generation += 1
        self.workers.stop_old(pool)
        self.alarm.ring()

    def placement(self, pool: FunctionPool) -> dict[str, int]:
        return self.workers.placement(pool)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.lock:
                if self._stopping:
                    return
                timeout = self._plan()
            if select.select([self.alarm.fd], [], [], timeout)[0]:
                self.alarm.clear()
            try:
                self._round()
            except Exception:
                _log.exception("fastinvoke's cluster supervisor met an error; it goes on")

    def _plan(self) -> float:
        now = monotonic_ns()
        wake_at = self._next_scan_ns
        deadline = self._hop.core.next_deadline()
        if 0 <= deadline < wake_at:
            wake_at = deadline
        wake_at = self.workers.next_idle_expiry(wake_at)
        if now - self.workers.placing_since() < STARVED_NS:
            wake_at = min(wake_at, now + _PLACING_POLL_NS)
        elif self.workers.placing or self._starting:
            wake_at = min(wake_at, now + _WAITING_POLL_NS)
        self.alarm.wake_at_ns = wake_at
        return max(0.0, (wake_at - now) / 1e9)

    def _round(self) -> None:
        if monotonic_ns() >= self._next_scan_ns:
            self._scan()
        if self._starting:
            self._link_started()
        self._package()
        with self.lock:
            now = monotonic_ns()
            self.workers.expire(now)
            self.workers.stop_idle(now)
            released, self.workers.released = self.workers.released, []
        for group in released:  # before placing: a new worker may need the room
            self.ray.release(group)
        self._place()

    # -- nodes ------------------------------------------------------------------------------

    def _scan(self) -> None:
        """Link to the nodes that joined (or came back); forget those Ray calls dead."""
        self._next_scan_ns = monotonic_ns() + SCAN_EVERY_NS
        nodes = self.ray.nodes()
        self.nodes = nodes
        with self.lock:
            wanted = [node_id for node_id in nodes if node_id not in self._starting
                      and (node_id not in self.links or not self.links[node_id].up)]
            for node_id in [node_id for node_id in self.links if node_id not in nodes]:
                self._drop(node_id)
        for node_id in [node_id for node_id in self.ray.agents if node_id not in nodes]:
            self._starting.pop(node_id, None)
            self.ray.forget_agent(node_id)
        if self.ray.node_id in wanted:  # this process's own node: its workers are ours
            wanted.remove(self.ray.node_id)
            link = LocalNode(self.ray.node_id, self._settings, self.lock,
                             self.workers.finished, self.workers.recycled, self._state_dir)
            with self.lock:
                self.links[link.node_id] = link
                self._deploy_all(link)
        if wanted:
            self._starting.update(self.ray.start_agents(
                wanted, self._run_id, protocol.encode_start(self._settings)))

    def _link_started(self, wait_s: float = 0.0) -> None:
        """Link to the node processes that have started since the last round (waiting up
        to ``wait_s`` for all of them)."""
        for node_id, endpoint in self.ray.answers(self._starting, wait_s).items():
            del self._starting[node_id]
            if isinstance(endpoint, BaseException):
                _log.warning("fastinvoke: no node process on Ray node %s (%s); trying again",
                             node_id, endpoint)
                continue
            link = RemoteNode(self._context, node_id, endpoint, self._keys)
            with self.lock:
                self._drop(node_id)
                self.links[node_id] = link
                self._relay.add(link)
                self._deploy_all(link)

    def _drop(self, node_id: str) -> None:
        """Stop using ``node_id``'s link (lock held; the relay closes its sockets)."""
        link = self.links.pop(node_id, None)
        if link is None:
            return
        if link.up:
            link.up = False
            self.workers.node_lost(link)
        if isinstance(link, RemoteNode):
            self._relay.retire(link)

    def _lost(self, link: RemoteNode) -> None:
        """The relay found ``link`` silent (lock held): the next scan links again if Ray
        says the node is alive (a restarted agent), or forgets it."""
        link.deployed.clear()
        self.workers.node_lost(link)
        self.alarm.ring()

    # -- code -------------------------------------------------------------------------------

    def _package(self) -> None:
        """Zip the code of functions created or changed since the last round, and deploy
        it to every node."""
        with self.lock:
            stale = [(pool, pool.generation, pool.config) for pool in self.pools.values()
                     if self._packages.get(pool.name, (-1,))[0] != pool.generation]
        for pool, generation, config in stale:
            data = _zip(config.code)
            package = (generation, hashlib.sha256(data).hexdigest(), data)
            with self.lock:
                if pool.deleted or pool.generation != generation:
                    continue
                self._packages[pool.name] = package
                for link in self.links.values():
                    if link.up:
                        self._deploy(link, pool)

    def _deploy_all(self, link: NodeLink) -> None:
        for pool in self.pools.values():
            if pool.name in self._packages:
                self._deploy(link, pool)

    def _deploy(self, link: NodeLink, pool: FunctionPool) -> None:
        """Send ``pool``'s current package to ``link`` (lock held), once per generation."""
        generation, sha, data = self._packages[pool.name]
        if link.deployed.get(pool.name) == generation:
            return
        link.send(protocol.Deploy(pool.name, generation, msgspec.json.encode(pool.config),
                                  sha, b"" if sha in link.code else data))
        link.code.add(sha)
        link.deployed[pool.name] = generation

    # -- placement ---------------------------------------------------------------------------

    def _place(self) -> None:
        workers, ray = self.workers, self.ray
        with self.lock:
            new = [(slot, slot.pool.config.memory_mb) for slot in workers.placing
                   if slot.group is None]
        for slot, memory_mb in new:
            group = ray.reserve(*worker_resources(memory_mb, self.overcommit))
            with self.lock:
                if slot.state == "released":
                    workers.released.append(group)
                else:
                    slot.group = group
        with self.lock:
            if not workers.placing:
                return
        placed = ray.placed()
        with self.lock:
            for slot in list(workers.placing):
                if slot.group is None:
                    continue
                link = self.links.get(placed.get(slot.group.id.hex(), ""))
                if (link is not None and link.up
                        and link.deployed.get(slot.pool.name) == slot.pool.generation):
                    workers.placing.remove(slot)
                    workers.placed(slot, link)
            if not self._starting:  # else a node coming may have the room
                workers.make_room(monotonic_ns())

    # -- shutdown ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every node process (their workers end with them) and leave the cluster."""
        with self.lock:
            self._stopping = True
        self.alarm.ring()
        if self._thread.is_alive():
            self._thread.join()
        self._relay.stop()
        with self.lock:
            for pool in list(self.pools.values()):
                self.remove(pool)
            groups, self.workers.released = self.workers.released, []
            for link in self.links.values():
                link.up = False
        for group in groups:
            self.ray.release(group)
        for link in self.links.values():
            if isinstance(link, LocalNode):  # not under the lock: its thread may want it
                link.close()
        self.ray.close()
        self._context.destroy(linger=0)  # every link's sockets
        self.alarm.close()


def _zip(code: str) -> bytes:
    """``code`` (a directory) as a zip, Unix modes kept (executables stay executable)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for root, dirs, files in os.walk(code):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                archive.write(path, os.path.relpath(path, code))
    return buffer.getvalue()
