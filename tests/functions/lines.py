"""Prints each of event["lines"] on a line of its own."""


def handler(event, context):
    for line in event["lines"]:
        print(line)
    return len(event["lines"])
