"""The ZeroMQ endpoint's protocol: one msgpack frame per message (msgspec Structs, encoded
as arrays), a DEALER client to the server's ROUTER.

    client -> server   Request(id, function, payload, invocation_type, log_type,
                               client_context, qualifier)
    server -> client   Response(id, status, payload, function_error, log_result,
                                executed_version, request_id, error_type, error_message,
                                error_fields)

* ``id`` is the client's: the response echoes it.  A client may have any number of
  requests outstanding (pipelining); responses come in completion order.
* ``payload`` is the event as raw JSON bytes (empty: ``{}``), and in the response the
  function's result (or error document) exactly as Lambda's Invoke returns it.
* ``invocation_type``: ``RequestResponse`` (status 200), ``Event`` (202, once queued),
  ``DryRun`` (204); ``log_type="Tail"`` puts base64 of the last 4 KB of the log in
  ``log_result``; ``client_context`` is Lambda's base64 of a JSON object.
* A function error is a 200 with ``function_error="Unhandled"``, as over HTTP.  A service
  error (unknown function, bad payload, throttling...) has its HTTP status, the exception
  name in ``error_type`` (``ResourceNotFoundException``...), its message, extra fields
  such as ``Reason`` in ``error_fields``, and Lambda's JSON error body as ``payload``.
* A frame that is not a Request gets status 400 ``InvalidRequestContentException`` with
  ``id`` 0.
"""

from __future__ import annotations

import msgspec

VERSION = 1


class Request(msgspec.Struct, array_like=True, gc=False):
    id: int
    function: str
    payload: bytes = b""
    invocation_type: str = "RequestResponse"
    log_type: str | None = None
    client_context: str | None = None
    qualifier: str | None = None


class Response(msgspec.Struct, array_like=True, gc=False):
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
