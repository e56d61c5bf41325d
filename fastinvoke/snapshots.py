"""Code as Lambda identifies it: a directory's ``CodeSha256``, and the copy a published
version keeps, so that later changes to ``$LATEST``'s files never reach the version."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path


def directory_digest(directory: str) -> tuple[str, int]:
    """``(CodeSha256, CodeSize)`` of a code directory (a template's ``CodeUri``): the
    digest of its files' relative paths and contents, in order, and their total size."""
    sha = hashlib.sha256()
    size = 0
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        sha.update(path.relative_to(root).as_posix().encode() + b"\0" + data)
        size += len(data)
    return base64.b64encode(sha.digest()).decode(), size


def copy_code(source: str, destination: str) -> None:
    """Copy the code directory ``source`` to ``destination`` (which must not exist),
    whole or not at all."""
    partial = destination + ".copying"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    try:
        shutil.copytree(source, partial, symlinks=True)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.rename(partial, destination)
