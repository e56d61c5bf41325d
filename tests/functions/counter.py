"""A module-level counter incremented per call: proves warm state (and its reset)."""

import os
import time

count = 0


def handler(event, context):
    global count
    count += 1
    if event.get("hang"):  # run past the function's timeout, then the worker is killed
        time.sleep(3600)
    return {"count": count, "pid": os.getpid()}
