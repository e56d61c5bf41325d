"""Prints ``megabytes`` MB in 1 MB lines, then a last line; answers its own peak RSS."""

import resource
import sys


def handler(event, context):
    line = "y" * (1024 * 1024 - 1) + "\n"
    for _ in range(event["megabytes"]):
        sys.stdout.write(line)
    print("the last line")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
