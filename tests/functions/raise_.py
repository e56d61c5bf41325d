"""Raises ValueError("boom")."""


def handler(event, context):
    raise ValueError("boom")
