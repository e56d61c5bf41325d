"""The baseline HTTP server: uvloop, httptools' parser, and a fixed 200 for every
request (keep-alive).  What serving HTTP costs before any invocation work:

    python -m bench.bare_http      # prints its port, serves until killed
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n3")


class FixedAnswer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)


async def serve() -> None:
    server = await asyncio.get_running_loop().create_server(FixedAnswer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    sys.exit(uvloop.run(serve()))
