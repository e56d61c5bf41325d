"""Ping-pong over an AF_UNIX SOCK_SEQPACKET pair from Python: what a socket hop costs."""

import os
import socket
import time

N = 20_000
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
if os.fork() == 0:
    ours.close()
    for _ in range(N + 1000):
        theirs.send(theirs.recv(64))
    os._exit(0)
theirs.close()
lat = []
for i in range(N + 1000):
    started = time.perf_counter_ns()
    ours.send(b"x" * 32)
    ours.recv(64)
    if i >= 1000:
        lat.append(time.perf_counter_ns() - started)
os.wait()
lat.sort()
print(f"python UDS p50={lat[N // 2] / 1e3:.2f}us p99={lat[N * 99 // 100] / 1e3:.2f}us")
