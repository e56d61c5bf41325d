"""What the sandbox costs: the same warm call and the same cold start, each with every
function in its own environment (``Invoker()``, the default) and without one
(``Invoker(sandbox=False)``).  The sandbox is built once per template (its Init) and
per worker at the fork (a user and mount namespace, a private /tmp): a warm invocation
crosses none of it.  Needs root; elsewhere the group is skipped."""

from __future__ import annotations

import os
from typing import Any

from ._skip import Skipped
from .bench_coldstart import fork_cold_starts, summary
from .bench_latency import fastinvoke_invoke
from .data import Sizes


def _needs_root() -> None:
    if os.geteuid() != 0:
        raise Skipped("the sandbox needs root")


def warm_sandboxed(sizes: Sizes) -> dict[str, Any]:
    _needs_root()
    return fastinvoke_invoke(sizes, sandbox=True)


def warm_unsandboxed(sizes: Sizes) -> dict[str, Any]:
    _needs_root()
    return fastinvoke_invoke(sizes, sandbox=False)


def first_reply_sandboxed(sizes: Sizes) -> dict[str, Any]:
    _needs_root()
    return summary(fork_cold_starts(sizes.coldstarts, {"sandbox": True}))


def first_reply_unsandboxed(sizes: Sizes) -> dict[str, Any]:
    _needs_root()
    return summary(fork_cold_starts(sizes.coldstarts, {"sandbox": False}))
