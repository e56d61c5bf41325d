"""Answers which modules its process has loaded: the template's, inherited by the fork."""

import sys


def handler(event, context):
    return sorted(sys.modules)
