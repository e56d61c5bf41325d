"""Does not compile: `return` outside a function is a SyntaxError at import time.

(A ruff-clean way to ship a module with a syntax error: ruff reports this as F706.)
"""

return "unreachable"  # noqa: F706


def handler(event, context):
    return "unreachable"
