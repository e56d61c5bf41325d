"""Deterministic inputs and the sizes of every measurement, in one place.

Events come from a seeded generator, so every contender and every round sees the same
bytes; the ``QUICK`` sizes are for iterating, not for figures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import msgspec

SEED = 20240611
ADD_EVENT: dict[str, int] = {"value1": 1, "value2": 2}
ADD_EVENT_BYTES = msgspec.json.encode(ADD_EVENT)
ADD_RESULT = b"3"
IN_FLIGHT = 64  # concurrent invocations in the throughput group
WORKERS = 2  # workers serving them (the machine has 2 cores)


@dataclass(frozen=True)
class Sizes:
    latency_calls: int  # timed warm calls per latency run
    warmup_calls: int
    throughput_calls: int  # invocations per throughput run
    coldstarts: int  # timed cold starts per run
    # Per isolation run: more than ``coldstarts``, for a p50 steady enough to show a cost
    # under 1 ms on a base that moves by more than that.
    cgroup_coldstarts: int
    # The peer comparison's slow contenders: calls of an in-process peer that forks per
    # call (python-lambda-local's API), and of a command line (one process per call).
    peer_calls: int
    cli_calls: int
    # Events per batched run (``invoke_many`` and the pools' ``map``), the same for each.
    batch_calls: int
    # The ``idle`` group's window: seconds the idle workers' CPU is read over.
    idle_s: float


FULL = Sizes(
    latency_calls=3000,
    warmup_calls=300,
    throughput_calls=20_000,
    coldstarts=20,
    cgroup_coldstarts=100,
    peer_calls=200,
    cli_calls=10,
    batch_calls=100_000,
    idle_s=10.0,
)
QUICK = Sizes(
    latency_calls=500,
    warmup_calls=100,
    throughput_calls=3_000,
    coldstarts=5,
    cgroup_coldstarts=20,
    peer_calls=30,
    cli_calls=3,
    batch_calls=10_000,
    idle_s=3.0,
)


def add_events(count: int, seed: int = SEED) -> list[dict[str, int]]:
    """``count`` add events with seeded operands (same list on every call)."""
    rng = random.Random(seed)
    return [{"value1": rng.randrange(1000), "value2": rng.randrange(1000)} for _ in range(count)]


def add_answers(events: list[dict[str, int]]) -> list[bytes]:
    """The result bytes each event must produce, to check a run did the work."""
    return [b"%d" % (event["value1"] + event["value2"]) for event in events]

# One whole vCPU (1,769 MB): the proportional CPU quota is real but never the bottleneck
# of a benchmark of the invoke path (a 128 MB function gets 7 % of a core, as on Lambda).
MEMORY_MB = 1769
