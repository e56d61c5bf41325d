"""What the chaos soak's handlers share: each run of an Event invocation is written down.

An event carrying ``"id"`` prints one line ``CHAOS-RUN <id> <request id> <start time>`` as
the handler starts, before anything can fail.  The line goes where a function's output
goes, the server's log store, and the soak reads it back with ``fastinvoke logs`` to tell
lost events (never ran) from duplicated ones (ran again after a success, or sooner than a
retry's delay).  A log line, not a file: a sandboxed function sees none of the host's
files.
"""

import time
from typing import Any


def record(event: dict[str, Any], context: Any) -> None:
    if "id" in event:
        print(f"CHAOS-RUN {event['id']} {context.aws_request_id} {time.time():.3f}", flush=True)
