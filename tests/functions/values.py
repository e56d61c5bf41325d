"""Returns a value chosen by event["kind"]: results whose bytes Lambda's runtime defines."""

import decimal

VALUES = {
    "dict": lambda: {"sum": 42, "items": [1, 2]},
    "tuple": lambda: (1, "two"),
    "text": lambda: "é✓",
    "nan": lambda: float("nan"),
    "infinity": lambda: float("-inf"),
    "decimal": lambda: decimal.Decimal("1.10"),
    "none": lambda: None,
    "bytes": lambda: b"raw \xff",
    "keys": lambda: {1: "a", None: "b", 2.5: "c", False: "d"},
}


def handler(event, context):
    return VALUES[event["kind"]]()
