"""Returns "ok" whatever the event."""


def handler(event, context):
    return "ok"
