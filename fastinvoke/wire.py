"""Every message fastinvoke sends between its processes, and the codecs for them.

Two channels carry them:

* **front-end <-> worker** (the worker's link: ``_core.Link``, a request and a reply slot
  in shared memory with eventfd wake-ups; or any transport with the same ``send(bytes)`` /
  ``recv() -> bytes``).  One message a frame; the event and the result travel inside it as
  opaque ``bin`` fields, never decoded on the way::

      worker -> front-end   Hello
      front-end -> worker   Invoke(..., event bytes)  |  Batch([Invoke, ...])  |  Stop
      worker -> front-end   Reply(..., result bytes)   (its output: a pipe, see pool.output)

  A ``Batch`` (only to a worker whose Hello says it takes them) carries invocations that
  waited: the worker runs them in order, one Reply each, so it goes from one to the next
  without waiting for the front-end.

* **front-end <-> template** (a socket for requests, each Fork with the new worker's link
  fds attached; a pipe for reports; one JSON message a line; ids are ``str`` there)::

      front-end -> template  Fork(worker) | Shutdown
      template -> front-end  Ready(init_ns) | InitFailed(error, init_ns)
                             | Unconfined(reason) | Forked(worker, pid)
                             | ForkFailed(worker, message) | Exited(...)

Headers are array-like tagged Structs: small on the wire, decoded by one prebuilt decoder.
``PROTOCOL`` goes in every Hello so a mismatched worker is refused, not misread.
"""

from __future__ import annotations

import msgspec

PROTOCOL = 5

SPIN_NEVER, SPIN_ADAPTIVE, SPIN_BUSY = 0, 1, 2

# Written by a worker into its output pipe before it runs an invocation marked for it (one
# it may begin before the front-end has taken the last one's output): where one
# invocation's lines end and the next one's begin.
OUTPUT_MARK = b"\x00\x1bfastinvoke:next-invocation\x1b\x00"


class Hello(msgspec.Struct, tag="hello", array_like=True, gc=False):
    protocol: int
    pid: int
    init_ns: int  # the Init duration this worker's first invocation reports
    batches: bool = False  # it runs a Batch (a runtime's bridge does not)


class Invoke(msgspec.Struct, tag="invoke", array_like=True, gc=False):
    request_id: str
    deadline_ms: int  # Unix epoch milliseconds, as Lambda-Runtime-Deadline-Ms
    invoked_arn: str
    event: bytes  # JSON, validated by the front-end, decoded only by the worker
    client_context: str | None = None  # decoded JSON text
    identity: str | None = None  # Cognito identity JSON text
    trace_id: str | None = None
    # After replying, how the worker waits for its next request: SPIN_NEVER (every core is
    # taken), SPIN_ADAPTIVE (as long as requests lately followed replies), SPIN_BUSY (more
    # wait for this function: as long as it may).
    spin: int = SPIN_ADAPTIVE
    stream: bool = False  # the caller takes a streamed response part by part (Chunk)
    marked: bool = False  # write OUTPUT_MARK before running it


class Batch(msgspec.Struct, tag="batch", array_like=True, gc=False):
    """Invocations to run one after the other, each answered as it ends."""

    items: list[Invoke]


class Stop(msgspec.Struct, tag="stop", array_like=True, gc=False):
    pass


class Reply(msgspec.Struct, tag="reply", array_like=True, gc=False):
    request_id: str
    duration_ns: int
    error_type: str | None  # None on success; the errorType of the error document otherwise
    max_rss_kb: int
    payload: bytes  # the result, or the error document when error_type is set
    retire: bool = False  # the worker must not be reused (its Init failed)
    init_ns: int = 0  # the worker re-ran Init for this invocation (its runtime had ended)


class Chunk(msgspec.Struct, tag="chunk", array_like=True, gc=False):
    """A part of a streamed response (Lambda's response streaming), sent as the runtime
    writes it, before the invocation's Reply (whose payload is then empty, or the error
    document)."""

    request_id: str
    data: bytes
    content_type: str = ""  # the response's, with its first part


class Boot(msgspec.Struct, gc=False):
    """What a template process is started with (its one command-line argument)."""

    function: str
    handler: str
    code: str  # absolute path of the code directory, the template's working directory
    control_in: int  # fd: front-end -> template (a SOCK_SEQPACKET socket)
    control_out: int  # fd: template -> front-end
    parent: int  # the front-end's pid: the template exits if it is not its parent
    prefork: bool = True  # False: Init runs in each worker after the fork
    runtime: str = ""  # FunctionConfig.runtime; "" for this machine's Python
    # The sandbox: the function's own unprivileged uid (-1: none), the size of /tmp, and
    # paths that no bind into the sandbox may expose (the state directory).
    sandbox_uid: int = -1
    tmp_mb: int = 512
    denied: list[str] = []
    opt: str = ""  # the directory that is the function's /opt (its layers), or ""
    debug_port: int = 0  # its worker waits for a debugger there (FunctionConfig.debug_port)


class Fork(msgspec.Struct, tag="fork", gc=False):
    worker: str
    log_stream: str  # the worker's log stream name, YYYY/MM/DD/[$LATEST]<32 hex>
    provisioned: bool = False
    # The fds that come with the request: the link's 5, the output pipe's write end, then
    # the group's peak-memory file if ``peak``, then ``groups`` cgroup.procs files (the
    # child joins them before it runs).  Open files, not paths: a sandboxed template may
    # see neither the cgroup tree nor the state directory.
    peak: bool = False
    groups: int = 0
    rlimit_mb: int = 0  # where no cgroup is writable: the memory limit, applied as RLIMIT_AS
    max_spin_ns: int = 0  # how long the worker may spin for its next request after a reply


class Shutdown(msgspec.Struct, tag="shutdown", gc=False):
    pass


# What a template reports: small tagged records, alike in shape, one per kind of report.
class Ready(msgspec.Struct, tag="ready", gc=False):
    init_ns: int


class InitFailed(msgspec.Struct, tag="init_failed", gc=False):
    error: dict
    init_ns: int


class Unconfined(msgspec.Struct, tag="unconfined", gc=False):
    reason: str  # what of the sandbox this machine could not give, and what that exposes


class Forked(msgspec.Struct, tag="forked", gc=False):
    worker: str
    pid: int


class ForkFailed(msgspec.Struct, tag="fork_failed", gc=False):
    worker: str
    message: str


class Exited(msgspec.Struct, tag="exited", gc=False):
    pid: int
    exit_status: int  # -1 when killed by a signal
    signal: int
    max_rss_kb: int
    user_us: int
    system_us: int


ToWorker = Invoke | Batch | Stop
FromWorker = Hello | Reply | Chunk
ToTemplate = Fork | Shutdown
FromTemplate = Ready | InitFailed | Unconfined | Forked | ForkFailed | Exited

encode_header = msgspec.msgpack.Encoder().encode
decode_to_worker = msgspec.msgpack.Decoder(ToWorker).decode
decode_from_worker = msgspec.msgpack.Decoder(FromWorker).decode

_json_encode = msgspec.json.Encoder().encode
decode_to_template = msgspec.json.Decoder(ToTemplate).decode
decode_from_template = msgspec.json.Decoder(FromTemplate).decode


encode_boot = _json_encode
decode_boot = msgspec.json.Decoder(Boot).decode


def encode_line(message: msgspec.Struct) -> bytes:
    """A control message as one line for the template pipe."""
    return _json_encode(message) + b"\n"
