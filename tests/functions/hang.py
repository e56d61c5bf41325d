"""Never returns: sleeps (handler) or burns CPU (busy) past any timeout."""

import time


def handler(event, context):
    time.sleep(3600)


def busy(event, context):
    while True:
        pass
