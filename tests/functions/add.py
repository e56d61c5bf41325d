"""Adds event["a"] and event["b"]."""


def handler(event, context):
    return {"sum": event["a"] + event["b"]}
