"""Logs through Python's logging at several levels (with an extra field and an
exception), prints, and raises when the event says so."""

import logging

logger = logging.getLogger("app")


def handler(event, context):
    print("plain print")
    logger.debug("debug detail")
    logger.info("hello %s", "world", extra={"orderId": 42})
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        logger.exception("division failed")
    if event.get("fail"):
        raise ValueError("boom")
    return "ok"
