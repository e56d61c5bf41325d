"""What the chaos soak's handlers share: each run of an Event invocation is written down.

An event carrying ``"id"`` gets one line ``<id> <request id> <start time>`` appended to
``$CHAOS_RUNS/<function>.runs`` as the handler starts, before anything can fail: the soak
reads these files to tell lost events (never ran) from duplicated ones (ran again after
a success, or sooner than a retry's delay).  One ``write`` on an ``O_APPEND`` fd: lines
from concurrent workers never interleave.
"""

import os
import time
from typing import Any


def record(event: dict[str, Any], context: Any) -> None:
    if "id" not in event:
        return
    path = os.path.join(os.environ["CHAOS_RUNS"], f"{context.function_name}.runs")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event['id']} {context.aws_request_id} {time.time():.3f}\n".encode())
    finally:
        os.close(fd)
