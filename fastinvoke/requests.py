"""Request ids (lower-case UUID4 strings, as Lambda's) and X-Ray trace ids.

Made from ``random.getrandbits`` rather than ``uuid.uuid4`` (os.urandom and a UUID
object per call): a request id must be unique, not secret, and this is on every call.
"""

from __future__ import annotations

from random import getrandbits
from time import time

_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A random version-4 UUID in its canonical text form."""
    h = "%032x" % (getrandbits(128) & _VERSION_MASK | _VERSION_BITS)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def trace_id(caller: str | None = None) -> str:
    """``_X_AMZN_TRACE_ID`` for one invocation: the caller's trace (its ``X-Amzn-Trace-Id``:
    its ``Root`` and ``Sampled`` kept, a new ``Parent`` segment), or a new one, unsampled
    (AWS X-Ray Developer Guide, "Tracing header")."""
    if caller:
        fields = dict(part.strip().partition("=")[::2] for part in caller.split(";"))
        if fields.get("Root"):
            return (f"Root={fields['Root']};Parent={getrandbits(64):016x};"
                    f"Sampled={fields.get('Sampled') or '0'}")
    return (f"Root=1-{int(time()):08x}-{getrandbits(96):024x};Parent={getrandbits(64):016x};"
            "Sampled=0")
