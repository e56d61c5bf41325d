"""Records where and when it was imported (the Init phase)."""

import os
import time

IMPORTED_BY = os.getpid()
IMPORTED_AT_NS = time.monotonic_ns()


def handler(event, context):
    return {"imported_by": IMPORTED_BY, "imported_at_ns": IMPORTED_AT_NS, "pid": os.getpid()}
