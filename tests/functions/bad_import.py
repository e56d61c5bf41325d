"""Imports a module that does not exist, at top level."""

import missing_dependency_for_fastinvoke_tests  # noqa: F401


def handler(event, context):
    return "unreachable"
