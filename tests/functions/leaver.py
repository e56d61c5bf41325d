"""Leaves a thread or a process running after it answers, and reports what they did."""

import os
import signal
import subprocess
import threading
import time

ticks = 0
children = []


def _tick():
    global ticks
    while True:
        ticks += 1
        time.sleep(0.001)


def handler(event, context):
    action = event["do"]
    if action == "thread":
        threading.Thread(target=_tick, daemon=True).start()
    elif action == "process":  # a shell that appends a line to a file every 10 ms
        children.append(subprocess.Popen(
            ["sh", "-c", f"while :; do echo x >> {event['path']}; sleep 0.01; done"]))
    elif action == "nap":  # an invocation that waits, the GIL free for other threads
        time.sleep(event["seconds"])
    elif action == "stop":
        for child in children:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        children.clear()
    if "path" in event and os.path.exists(event["path"]):
        with open(event["path"]) as lines:
            return {"ticks": ticks, "lines": len(lines.readlines())}
    return {"ticks": ticks, "lines": 0}
