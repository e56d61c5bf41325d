"""Logs one JSON line, as Powertools' Logger does: its level, message and latency."""

import json


def handler(event, context):
    print(json.dumps({"level": event.get("level", "INFO"), "message": event.get("message"),
                      "latency": event.get("latency", 0), "tags": event.get("tags", [])}))
    return "logged"
