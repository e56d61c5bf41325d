"""Deployment packages: a ``Code.ZipFile`` unpacked into the state directory, and the
``CodeSha256``/``CodeSize`` Lambda reports (docs/lambda-behaviour.md,
"Function management API")."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import PurePosixPath

from ..errors import InvalidParameterValueException, RequestEntityTooLargeException

MAX_ZIPPED = 52_428_800
MAX_UNZIPPED = 262_144_000
_UNZIP_FAILED = ("Could not unzip uploaded file. Please check your file, then try to upload "
                 "again.")


def digest(package: bytes) -> str:
    """``CodeSha256``: base64 of the SHA-256 of the package's bytes."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


def decode_zip(text: str) -> bytes:
    """The package's bytes from the base64 text botocore sends."""
    try:
        package = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameterValueException(
            f"{_UNZIP_FAILED} (ZipFile is not valid base64)") from None
    if len(package) > MAX_ZIPPED:
        raise RequestEntityTooLargeException(f"Zipped size must be smaller than {MAX_ZIPPED} "
                                             "bytes")
    return package


def unpack(package: bytes, destination: str) -> None:
    """Unzip ``package`` into ``destination`` (created; it must not exist), whole or not
    at all: a bad package raises Lambda's error and leaves nothing behind."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(package))
    except (zipfile.BadZipFile, ValueError):
        raise InvalidParameterValueException(_UNZIP_FAILED) from None
    with archive:
        entries = archive.infolist()
        if sum(entry.file_size for entry in entries) > MAX_UNZIPPED:
            raise InvalidParameterValueException(
                f"Unzipped size must be smaller than {MAX_UNZIPPED} bytes")
        for entry in entries:
            path = PurePosixPath(entry.filename.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts:
                raise InvalidParameterValueException(
                    f"{_UNZIP_FAILED} (the entry '{entry.filename}' would be written outside "
                    "the code directory)")
        parent = os.path.dirname(destination)
        os.makedirs(parent, exist_ok=True)
        partial = tempfile.mkdtemp(prefix=".unpacking-", dir=parent)
        try:
            archive.extractall(partial)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError,
                RuntimeError) as exc:  # corrupt, encrypted, an unknown compression
            shutil.rmtree(partial, ignore_errors=True)
            raise InvalidParameterValueException(f"{_UNZIP_FAILED} ({exc})") from None
    os.rename(partial, destination)
