"""SAM's ``AutoPublishAlias`` applied to an Invoker: each such function's ``$LATEST`` is
published (a new version only when its code or configuration changed since the last
one, as ``sam deploy`` publishes one only then) and the alias points at that version."""

from __future__ import annotations

from .errors import ResourceNotFoundException
from .invoker import Invoker


def publish_aliases(invoker: Invoker, aliases: dict[str, tuple[str, str]]) -> list[str]:
    """Publish and point each function's alias (function name -> (alias, the version's
    description)); one line per alias saying where it points."""
    lines = []
    for name, (alias, description) in aliases.items():
        number = invoker.publish_version(name, description).config.version
        try:
            current = invoker.get_alias(name, alias).function_version
        except ResourceNotFoundException:
            invoker.create_alias(name, alias, number)
        else:
            if current != number:
                invoker.update_alias(name, alias, function_version=number, weights={})
        lines.append(f"{name}:{alias} -> version {number}")
    return lines
