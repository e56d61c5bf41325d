"""Returns values JSON cannot represent."""


def handler(event, context):
    return object()


def a_set(event, context):
    return {1, 2, 3}
