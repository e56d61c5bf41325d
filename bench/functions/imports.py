"""Cold-start baseline: a fresh interpreter that loads what a worker loads, answers once.

Run as a script (``python bench/functions/imports.py``), so its directory is on sys.path
and ``add`` resolves as fastinvoke's template resolves ``add.lambda_handler``.  It reads
one JSON event on stdin and prints the JSON result: spawn to answer is the cost a
fork-from-template worker avoids.
"""

import sys

import msgspec
import zmq  # noqa: F401  (a worker imports it; its import time is part of the cost)
from add import lambda_handler

event = msgspec.json.decode(sys.stdin.buffer.read())
sys.stdout.buffer.write(msgspec.json.encode(lambda_handler(event, None)) + b"\n")
