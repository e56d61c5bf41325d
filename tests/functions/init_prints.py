"""Prints while its module loads (Init) and while it handles an event."""

print("loading the model")


def handler(event, context):
    print("handling")
    return 1
