"""Request ids: lower-case UUID4 strings, as Lambda's.

Made from ``random.getrandbits`` rather than ``uuid.uuid4`` (os.urandom and a UUID
object per call): a request id must be unique, not secret, and this is on every call.
"""

from __future__ import annotations

from random import getrandbits

_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A random version-4 UUID in its canonical text form."""
    h = "%032x" % (getrandbits(128) & _VERSION_MASK | _VERSION_BITS)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
