"""X-Ray trace ids, as the runtime hands each invocation one (``_X_AMZN_TRACE_ID``)."""

from __future__ import annotations

from random import getrandbits
from time import time


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
