"""A poller's troubles on stderr: what a server running unattended must say, but not
once per failed poll while an endpoint is down."""

from __future__ import annotations

import sys
import time

EVERY_S = 60.0


class Reporter:
    """Says ``prefix: text`` at most once every ``EVERY_S`` (any thread)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._said = -EVERY_S

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now - self._said >= EVERY_S:
            self._said = now
            print(f"{self.prefix}: {text}", file=sys.stderr, flush=True)
