"""What the front-end and a node process say to each other over their ZeroMQ link.

One message a frame (``Several`` and ``Finished`` carry a burst), msgpack, tagged
array-like Structs (as ``wire``'s headers).  The invocation itself travels as
``wire.Invoke`` bytes inside ``Run``, encoded once by the front-end's dispatcher, as it
would be for a local worker::

    front-end -> node   Deploy | Resize | Run | Recycle | Undeploy | Several | Ping
    node -> front-end   Finished([Done, ...]) | Recycled | Beat

A *slot* is one worker's room on a node, reserved through Ray for the front-end: a node
holds at most as many workers of a function as the front-end gave it slots (``Resize``);
invocations beyond them (a busy slot's lanes, ``cluster.slots``) wait at the node.
"""

from __future__ import annotations

import msgspec

PROTOCOL = 1
# Invocations a busy slot may have waiting at its node beyond the one its worker runs
# (``cluster.slots``' lanes).  The node holds its answers while at least half that many
# wait behind each of the function's workers there (``engine``), so one frame carries a
# burst of them and the front-end's next invocations still arrive before they are needed.
PIPELINE_DEPTH = 16


class Deploy(msgspec.Struct, tag="deploy", array_like=True, gc=False):
    """Run Init for ``config`` (FunctionConfig as JSON, its ``code`` the key of ``code``
    in the node's code cache); a new ``generation`` replaces the function's workers."""

    function: str
    generation: int
    config: bytes
    code_sha256: str
    code: bytes  # a zip of the code directory; b"" when the node has it already


class Resize(msgspec.Struct, tag="resize", array_like=True, gc=False):
    function: str
    workers: int  # how many slots the node has for it now: idle workers beyond stop


class Run(msgspec.Struct, tag="run", array_like=True, gc=False):
    slot: bytes
    function: str
    invoke: bytes  # wire.Invoke, as encoded for a local worker


class Recycle(msgspec.Struct, tag="recycle", array_like=True, gc=False):
    """Stop the function's idle workers (the next invocations are cold starts), and say
    ``Recycled`` once they have ended."""

    function: str
    wait_s: float


class Undeploy(msgspec.Struct, tag="undeploy", array_like=True, gc=False):
    function: str


class Several(msgspec.Struct, tag="several", array_like=True, gc=False):
    """Messages sent as one frame, in order: the invocations a burst of answers lets
    the front-end send at once."""

    messages: list[Deploy | Resize | Run | Recycle | Undeploy]


class Ping(msgspec.Struct, tag="ping", array_like=True, gc=False):
    pass


class Done(msgspec.Struct, tag="done", array_like=True, gc=False):
    """An invocation's end on the node: every field the front-end meters, logs and
    answers with (``outcome`` as ``metering`` counts it)."""

    slot: bytes
    request_id: str
    outcome: int
    error_type: str | None
    payload: bytes
    duration_ns: int
    max_rss_kb: int
    init_ns: int
    cold: bool
    log: bytes
    log_stream: str


class Finished(msgspec.Struct, tag="finished", array_like=True, gc=False):
    """The invocations that ended since the node last sent, in the order they ended: one
    frame for a burst, not one per invocation."""

    done: list[Done]


class Recycled(msgspec.Struct, tag="recycled", array_like=True, gc=False):
    function: str


class Beat(msgspec.Struct, tag="beat", array_like=True, gc=False):
    """The node is alive."""


class Start(msgspec.Struct, gc=False):
    """What a node process is started with, on its stdin (never its command line: the
    keys are secret).  ``curve_*`` are z85 keys: the node's own pair and the one client
    key it accepts (the front-end's)."""

    run: str
    protocol: int
    host: str  # the address to bind, the node's address in the cluster
    curve_public: bytes
    curve_secret: bytes
    client_public: bytes
    keep_warm_s: float
    cpu_limits: str
    memory_limits: bool
    sandbox: bool
    region: str
    orphan_after_s: float  # exit when the front-end has been silent this long
    cpus: float = 0  # the CPUs Ray offers on the node (set by its agent; 0: the machine's)
    # The node's own priority (its raylet's niceness, set by its agent), which the node
    # process returns to: Ray starts its workers, the agent among them, at niceness 15.
    niceness: int | None = None


ToNode = Deploy | Resize | Run | Recycle | Undeploy | Several | Ping
FromNode = Finished | Recycled | Beat

encode = msgspec.msgpack.Encoder().encode
decode_to_node = msgspec.msgpack.Decoder(ToNode).decode
decode_from_node = msgspec.msgpack.Decoder(FromNode).decode
encode_start = msgspec.json.Encoder().encode
decode_start = msgspec.json.Decoder(Start).decode
