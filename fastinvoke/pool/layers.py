"""A function's layers as one ``/opt``: Lambda extracts a function's layers (up to 5) into
``/opt`` in order, a later layer's file replacing an earlier one's.

One layer is used where it is.  Several are merged once per combination into
``<state>/opt/<digest>/`` of hard links to their files (copies where the filesystem
refuses links): nothing is unpacked or copied per worker or per invocation, and every
worker of every function with the same layers shares the same files.  The sandbox binds
the result read-only at ``/opt``; without it, the module paths point into it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading

_lock = threading.Lock()  # merging: two pools with the same layers build it once


def opt_root(state_dir: str, layers: list[str]) -> str:
    """The directory that is the function's ``/opt`` ("" without layers)."""
    if not layers:
        return ""
    sources = [os.path.realpath(layer) for layer in layers]
    if len(sources) == 1:
        return sources[0]
    digest = hashlib.sha256("\0".join(
        f"{source}:{os.stat(source).st_mtime_ns}" for source in sources).encode()).hexdigest()
    merged = os.path.join(state_dir, "opt", digest[:32])
    with _lock:
        if not os.path.isdir(merged):
            building = merged + ".building"
            shutil.rmtree(building, ignore_errors=True)
            for source in sources:  # in order: a later layer's file replaces an earlier one's
                shutil.copytree(source, building, copy_function=_link, dirs_exist_ok=True,
                                symlinks=True)
            os.replace(building, merged)
    return merged


def _link(source: str, target: str) -> None:
    if os.path.lexists(target):
        os.unlink(target)
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links refused: a copy
        shutil.copy2(source, target)
