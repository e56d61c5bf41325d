def handler(event, context):
    """Behind an HTTP API route, or invoked with such an event: a plain value."""
    return {"hello": event["pathParameters"]["name"]}
