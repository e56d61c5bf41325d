"""The ZeroMQ endpoint's protocol: one msgpack frame per message (msgspec Structs, encoded
as arrays), a DEALER client to the server's ROUTER.

    client -> server   Request(id, function, payload, invocation_type, log_type,
                               client_context, qualifier, payloads)
    server -> client   Response(id, status, payload, function_error, log_result,
                                executed_version, request_id, error_type, error_message,
                                error_fields)

* ``id`` is the client's: the response echoes it.  A client may have any number of
  requests outstanding (pipelining); responses come in completion order.
* ``payload`` is the event as raw JSON bytes (empty or nil: ``{}``), and in the response
  the function's result (or error document) exactly as Lambda's Invoke returns it.
* ``invocation_type``: ``RequestResponse`` (status 200), ``Event`` (202, once queued),
  ``DryRun`` (204); ``log_type="Tail"`` puts base64 of the last 4 KB of the log in
  ``log_result``; ``client_context`` is Lambda's base64 of a JSON object.
* A function error is a 200 with ``function_error="Unhandled"``, as over HTTP.  A service
  error (unknown function, bad payload, throttling...) has its HTTP status, the exception
  name in ``error_type`` (``ResourceNotFoundException``...), its message, extra fields
  such as ``Reason`` in ``error_fields``, and Lambda's JSON error body as ``payload``.
* A frame that is not a Request gets status 400 ``InvalidRequestContentException`` with
  ``id`` 0.

Batches.  A Request whose ``payloads`` is a list (not nil) carries N events: the server
runs them with ``Invoker.ainvoke_many`` (streamed through the function's workers) and
answers with N Responses, one per event, with ids ``id, id+1, ..., id+N-1`` in the events'
order (the client reserves that block of ids; they all come once the batch has ended).
Each is that invocation's own answer (its request id, a function error in place).  A
service error raised for the batch (any event invalid, its message then starting
``event K:``; throttled; unknown function) means none of it ran, and every one of the N
Responses is that error.  In a batch Request ``payload`` is nil (a server older than
batches cannot decode that, so it answers 400 with ``id`` 0 instead of running one
``{}`` invocation), and ``client_context`` and ``qualifier`` are nil (else all N get 400
``InvalidRequestContentException``: send such invocations one Request each).  An empty
``payloads`` gets no Response.  A Request without ``payloads`` (every client before
batches) is one invocation, as above.
"""

from __future__ import annotations

import msgspec

VERSION = 2


class Request(msgspec.Struct, array_like=True, gc=False):
    id: int
    function: str
    payload: bytes | None = b""  # nil in a batch
    invocation_type: str = "RequestResponse"
    log_type: str | None = None
    client_context: str | None = None
    qualifier: str | None = None
    payloads: list[bytes] | None = None  # a batch: one Response per event, ids id...id+N-1


class Response(msgspec.Struct, array_like=True, gc=False):
    """``InvokeResult``'s fields on the wire (array-like: positions, not names), with the
    request's ``id`` and a service error's type and message."""

    id: int
    status: int
    payload: bytes = b""
    function_error: str | None = None
    log_result: str | None = None
    executed_version: str | None = None
    request_id: str = ""
    error_type: str | None = None
    error_message: str | None = None
    error_fields: dict[str, str] = {}


encode = msgspec.msgpack.Encoder().encode
decode_request = msgspec.msgpack.Decoder(Request).decode
decode_response = msgspec.msgpack.Decoder(Response).decode
