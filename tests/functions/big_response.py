"""Returns a string whose JSON is larger than Lambda's 6 MiB + 100 bytes response limit."""


def handler(event, context):
    return "x" * (6 * 1024 * 1024 + 100)
