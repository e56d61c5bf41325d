"""Fails its Init: raises at import time."""

raise Exception("Runtime startup fails")


def handler(event, context):  # pragma: no cover - never defined
    return "unreachable"
