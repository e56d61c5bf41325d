"""AWS's event stream encoding (``application/vnd.amazon.eventstream``), in which
InvokeWithResponseStream answers and botocore reads: each message is a prelude (total and
headers lengths, their CRC32), string headers, the payload and the CRC32 of it all, big
endian (AWS SDK developer guides, "Event stream encoding")."""

from __future__ import annotations

import struct
import zlib

_STRING = 7  # a header value's type: a UTF-8 string of 2-byte length


def message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event stream message."""
    encoded = b"".join(
        struct.pack("!B", len(name_bytes)) + name_bytes
        + struct.pack("!BH", _STRING, len(value_bytes)) + value_bytes
        for name, value in headers.items()
        for name_bytes, value_bytes in ((name.encode(), value.encode()),))
    prelude = struct.pack("!II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + encoded + payload
    return body + struct.pack("!I", zlib.crc32(body))


def event(event_type: str, payload: bytes, content_type: str) -> bytes:
    """An event of InvokeWithResponseStream's stream (``PayloadChunk``, ``InvokeComplete``)."""
    return message({":event-type": event_type, ":content-type": content_type,
                    ":message-type": "event"}, payload)
