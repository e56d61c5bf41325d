"""Pages of the Lambda API's list operations: ``MaxItems`` (at most 50 a page, whatever
is asked, as ListFunctions answers) and an opaque ``Marker`` that names the last item of
the previous page, so a page stays right when items come and go between calls."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..errors import InvalidParameterValueException, ValidationException

if TYPE_CHECKING:
    from .functions import FunctionRecord

T = TypeVar("T")
PAGE_SIZE = 50


def page(items: Sequence[T], key: Callable[[T], str],
         query: dict[str, str]) -> tuple[Sequence[T], str | None]:
    """The page of ``items`` (sorted by ``key``) the query asks for, and the
    ``NextMarker`` of the next one (None: this is the last)."""
    limit = min(_max_items(query.get("MaxItems")), PAGE_SIZE)
    marker = query.get("Marker")
    start = 0 if marker is None else sum(1 for item in items if key(item) <= _last(marker))
    chosen = items[start:start + limit]
    more = start + limit < len(items)
    return chosen, base64.urlsafe_b64encode(key(chosen[-1]).encode()).decode() if more else None


def version_order(record: FunctionRecord) -> str:
    """A function's records in Lambda's order: $LATEST first, then versions by number."""
    version = record.config.version
    return "" if version == "$LATEST" else version.zfill(10)


def _max_items(text: str | None) -> int:
    if text is None:
        return PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise ValidationException(
            f"1 validation error detected: Value '{text[:50]}' at 'maxItems' failed to satisfy "
            "constraint: Member must be an integer from 1 to 10000")
    return int(text)


def _last(marker: str) -> str:
    try:
        return base64.b64decode(marker.encode("ascii"), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidParameterValueException(
            "Invalid Marker: pass the NextMarker of the previous page unchanged") from None


def listing(member: str, items: list[object], marker: str | None) -> dict[str, object]:
    """A list operation's answer: the page under ``member``, and ``NextMarker`` if more."""
    document: dict[str, object] = {member: items}
    if marker is not None:
        document["NextMarker"] = marker
    return document
