"""The ``fastinvoke serve`` process: an Invoker, the Lambda API over HTTP, and the stop.

Stopping.  The first SIGTERM or SIGINT stops accepting connections, lets the requests
being answered finish (at most ``grace_s``), then closes the Invoker, which stops every
template and worker.  A second SIGINT stops at once.  Either way no worker outlives the
server: the Invoker's close kills and reaps what is left.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import sys
from dataclasses import dataclass, field

import uvloop

from ..config import FunctionConfig
from ..invoker import Invoker
from .api import LambdaApi
from .functions import Functions
from .metrics import Metrics
from .server import HttpServer, Limits
from .sigv4 import Verifier


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 3001
    state_dir: str | None = None
    keys: dict[str, str] | None = None  # access key id -> secret: SigV4 required
    functions: list[FunctionConfig] = field(default_factory=list)
    limits: Limits = Limits()
    grace_s: float = 30.0


def check_exposure(host: str, keys: dict[str, str] | None) -> str | None:
    """Why serving on ``host`` is refused, or None.  Beyond loopback, anyone who can
    reach the port could run code: requests must then be signed."""
    if keys is not None or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (f"refusing to serve on {host} without authentication: anyone who reaches it could "
            "run code. Add --auth sigv4 --keys FILE (a JSON object of access key id -> secret "
            "key; clients sign with those keys), or bind 127.0.0.1")


def serve(options: ServeOptions) -> int:
    """Run until stopped by a signal; returns the exit status."""
    return uvloop.run(_serve(options))


async def _serve(options: ServeOptions) -> int:
    loop = asyncio.get_running_loop()
    invoker = Invoker(options.state_dir)
    try:
        functions = Functions(invoker)
        for note in await asyncio.to_thread(functions.start, options.functions):
            print(f"note: {note}", file=sys.stderr)
        verifier = None if options.keys is None else Verifier(options.keys)
        server = HttpServer(LambdaApi(invoker, functions, Metrics(invoker), verifier),
                            options.limits)
        port = await server.start(options.host, options.port)
        stop, now = asyncio.Event(), asyncio.Event()

        def on_signal(signum: int) -> None:
            if stop.is_set() and signum == signal.SIGINT:
                now.set()
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        print(f"fastinvoke: serving the Lambda API on http://{options.host}:{port} "
              f"({len(functions.records)} functions, state in {invoker.state_dir})", flush=True)
        await stop.wait()
        server.stop_accepting()
        if server.answering:
            print(f"fastinvoke: stopping: finishing {server.answering} requests (at most "
                  f"{options.grace_s:g} s; Ctrl-C again to stop now)", file=sys.stderr, flush=True)
            waits = [loop.create_task(server.drain(options.grace_s)), loop.create_task(now.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
        server.abort()
    finally:
        await asyncio.to_thread(invoker.close)
    print("fastinvoke: stopped", file=sys.stderr, flush=True)
    return 0
