"""Returns the worker's pid."""

import os


def handler(event, context):
    return os.getpid()
