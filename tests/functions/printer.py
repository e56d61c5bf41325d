"""Prints event["message"] and logs it with logging.warning."""

import logging


def handler(event, context):
    print(event["message"])
    logging.warning("warned %s", event["message"])
    return {"printed": event["message"]}
