"""Logs the event's message to stdout (Lambda sends it to CloudWatch Logs) and returns None."""


def lambda_handler(event, context):
    print(event["message"])
