"""Sleeps event["seconds"] (default 0), then returns its pid and event["id"].

With event["notify"] (a Unix datagram socket path) it first sends its pid there, so a
test learns, without sleeping itself, that the invocation is running on a worker.
"""

import os
import socket
import time


def handler(event, context):
    if "notify" in event:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(str(os.getpid()).encode(), event["notify"])
    time.sleep(event.get("seconds", 0))
    return {"pid": os.getpid(), "id": event.get("id")}
