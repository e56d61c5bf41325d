"""Adds two numbers from the event: the smallest useful Lambda handler."""


def lambda_handler(event, context):
    return event["value1"] + event["value2"]
