"""State kept as JSON files in a state directory, written whole: a crash while writing
leaves the previous file, never half of a new one."""

from __future__ import annotations

import os
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


def save_json(path: str, value: Any) -> None:
    """Write ``value`` to ``path`` as JSON: into ``path.partial``, then renamed over it."""
    partial = path + ".partial"
    with open(partial, "wb") as file:
        file.write(msgspec.json.format(msgspec.json.encode(value)))
    os.replace(partial, path)


def load_json(path: str, kind: type[T], missing: T) -> T:
    """``path`` decoded as ``kind``; ``missing`` when there is no such file."""
    try:
        with open(path, "rb") as file:
            return msgspec.json.decode(file.read(), type=kind)
    except FileNotFoundError:
        return missing
